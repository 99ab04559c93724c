"""Writes the SAM template as JSON, for tests/infra.rs to read without a YAML parser.

The template is YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt, !If, …); cfn-lint's
own loader reads it as CloudFormation does and turns each short form into its long form
({"Ref": …}, {"Fn::Sub": …}, …).

usage: python scripts/template_json.py infra/template.yaml target/template.json
"""

import json
import os
import sys

from cfnlint.decode import decode


def main() -> int:
    source, dest = sys.argv[1], sys.argv[2]
    template, matches = decode(source)
    if matches or template is None:
        for m in matches:
            print(f"template_json: {m}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    tmp = dest + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(template, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
