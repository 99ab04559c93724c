//! The settings of one integration (one CIN7 account ⇄ one GoSweetSpot site), as in section 3
//! of the product specification. The same serde types are read from a TOML or JSON file in
//! local mode and stored as a DynamoDB item in AWS mode. Secret fields are *references* (a
//! Secrets Manager name or ARN, or an environment variable name), never values.
//!
//! [`IntegrationSettings::validate`] runs whenever settings are saved and names the field of
//! every problem it finds.

use crate::gss::model::limits;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A reference to a secret: a Secrets Manager name or ARN (AWS mode) or an environment
/// variable name (local mode).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One integration's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSettings {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub cin7: Cin7Settings,
    pub gss: GssSettings,
    pub webhook: WebhookSettings,
    #[serde(default)]
    pub import: ImportSettings,
    #[serde(default)]
    pub write_back: WriteBackSettings,
}

fn yes() -> bool {
    true
}

/// CIN7 Omni credentials and host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cin7Settings {
    pub api_username: String,
    pub api_key: SecretRef,
    #[serde(default = "default_cin7_url")]
    pub base_url: String,
}

fn default_cin7_url() -> String {
    "https://api.cin7.com/api".into()
}

/// GoSweetSpot credentials, host and cost centres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GssSettings {
    pub site_id: String,
    pub access_key: SecretRef,
    pub support_email: String,
    #[serde(default = "default_gss_url")]
    pub base_url: String,
    /// `costcentre` on published orders, unless the branch has its own.
    #[serde(default)]
    pub cost_centre: Option<String>,
    /// Cost centre per CIN7 branch id (keys are branch ids as text).
    #[serde(default)]
    pub cost_centre_by_branch: BTreeMap<String, String>,
}

fn default_gss_url() -> String {
    "https://api.gosweetspot.com".into()
}

/// How webhook deliveries are verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The HMAC secret configured in GoSweetSpot (required).
    pub secret: SecretRef,
    /// The query parameter holding the signature; unset, the request's single query parameter
    /// is taken whatever its name (GoSweetSpot does not document the name).
    #[serde(default)]
    pub signature_param: Option<String>,
}

/// Which CIN7 orders are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportSettings {
    /// Only these stages (empty: any stage).
    pub stages: Vec<String>,
    /// Never these stages.
    pub exclude_stages: Vec<String>,
    /// Only these branches (empty: all).
    pub branch_ids: Vec<i64>,
    /// Orders created longer ago than this are not published.
    pub max_age_days: u32,
    /// Where the first pull starts (unset: seven days before it runs).
    pub start_from: Option<DateTime<Utc>>,
    /// ISO alpha-2 country used when `deliveryCountry` is empty.
    pub default_country: String,
    /// The seed's "disable fulfilling orders with batched items".
    pub block_batched_items: bool,
    /// How far before its cursor each pull reads again, in seconds: orders saved late with
    /// an earlier `modifiedDate` are still read (re-read orders cost no GoSweetSpot call).
    pub overlap_seconds: u32,
    /// The merchant's business hours in its time zone, `"HH:MM-HH:MM"` (may span midnight):
    /// the pull polls every minute in them while orders are arriving (see
    /// [`crate::schedule::policy`]).
    pub business_hours: String,
    /// The merchant's IANA time zone, e.g. `"Pacific/Auckland"`; business hours are read in it,
    /// daylight saving included.
    pub timezone: String,
    /// The most of CIN7's daily call limit the pull's polling may use, in percent (1–100); the
    /// rest is left for write-backs and operators.
    pub poll_budget_percent: u8,
    /// A CIN7 header field (e.g. `freightDescription`, `customFields.orders_1000`) copied to
    /// GoSweetSpot's `customField1Value`; empty: none.
    pub custom_field_1: String,
    /// The same, to `customField2Value`.
    pub custom_field_2: String,
    /// Puts the shipping method CIN7 holds (`freightDescription`) ahead of the delivery
    /// instructions GoSweetSpot prints on the label.
    pub instructions_prefix_shipping_method: bool,
}

impl ImportSettings {
    /// The `fields=` names the pull asks CIN7 for: what the product reads, and the header
    /// fields the custom-field settings copy.
    pub fn order_fields(&self) -> Vec<&'static str> {
        let mut fields = crate::cin7::model::SALES_ORDER_FIELDS.to_vec();
        for name in [&self.custom_field_1, &self.custom_field_2] {
            if let Some(f) = crate::cin7::model::copyable_field(name)
                && !fields.contains(&f)
            {
                fields.push(f);
            }
        }
        fields
    }
}

/// The longest `import.overlap_seconds` accepted: a day.
pub const MAX_OVERLAP_SECONDS: u32 = 86_400;

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            stages: Vec::new(),
            exclude_stages: ["Dispatched", "Declined", "On Hold", "Awaiting Payment"]
                .map(String::from)
                .to_vec(),
            branch_ids: Vec::new(),
            max_age_days: 60,
            start_from: None,
            default_country: "NZ".into(),
            block_batched_items: false,
            overlap_seconds: 60,
            business_hours: "07:00-19:00".into(),
            timezone: "Pacific/Auckland".into(),
            poll_budget_percent: 40,
            custom_field_1: String::new(),
            custom_field_2: String::new(),
            instructions_prefix_shipping_method: false,
        }
    }
}

/// Where the tracking URL is written on the CIN7 order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrackingUrlField {
    /// Appended to `internalComments` as its own line.
    #[default]
    InternalComments,
    /// Stored in `customFields.<key>`.
    CustomField(String),
}

impl fmt::Display for TrackingUrlField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InternalComments => f.write_str("internalComments"),
            Self::CustomField(key) => write!(f, "customFields.{key}"),
        }
    }
}

impl Serialize for TrackingUrlField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TrackingUrlField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "internalComments" {
            Ok(Self::InternalComments)
        } else if let Some(key) = text.strip_prefix("customFields.") {
            Ok(Self::CustomField(key.to_string()))
        } else {
            Err(serde::de::Error::custom(format!(
                "expected \"internalComments\" or \"customFields.<key>\", got {text:?}"
            )))
        }
    }
}

/// Which freight figure is written to `freightTotal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreightMode {
    #[default]
    Off,
    Cost,
    MarkedUp,
}

/// A fallback markup for a cost centre, used when GoSweetSpot gives no marked-up figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Markup {
    /// Percent of the cost (0–500).
    Percent(Decimal),
    /// A fixed amount added to the cost.
    Fixed(Decimal),
}

/// What is written back to CIN7 when a consignment is created.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriteBackSettings {
    /// The seed's "Send back Ticket Number": dispatch the order with the connote, carrier and
    /// tracking URL.
    pub send_ticket_number: bool,
    pub tracking_url_field: TrackingUrlField,
    pub freight: FreightMode,
    /// Replace a non-zero `freightTotal` already on the order.
    pub overwrite_existing_freight: bool,
    pub markup_by_cost_centre: BTreeMap<String, Markup>,
    /// The `idCustomerAppsLink` value, or the whole link copied from CIN7.
    pub shopify_trigger: Option<String>,
    /// The carrier names written to CIN7, by GoSweetSpot carrier name (the text of its
    /// rate-card label before the first " - ", or the whole label), e.g.
    /// `{ "Post Haste" = "PostHaste NZ" }`: how a merchant writes the names Shopify
    /// recognises. Unmapped carriers are written by their GoSweetSpot name.
    pub carrier_names: BTreeMap<String, String>,
}

/// The longest carrier name written to CIN7's `logisticsCarrier` (CIN7 documents no limit;
/// this keeps a mapping to a plausible carrier name).
pub const CARRIER_NAME_MAX: usize = 100;

/// One problem with settings, naming its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Settings that cannot be saved: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid settings: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSettings(pub Vec<FieldError>);

/// Settings that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SettingsParseError {
    #[error("settings are not valid TOML: {0}")]
    Toml(String),
    #[error("settings are not valid JSON: {0}")]
    Json(String),
    #[error(transparent)]
    Invalid(#[from] InvalidSettings),
}

impl IntegrationSettings {
    /// Reads settings from JSON, then validates them.
    pub fn from_json(text: &str) -> Result<Self, SettingsParseError> {
        let settings: Self =
            serde_json::from_str(text).map_err(|e| SettingsParseError::Json(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Reads settings from TOML (local mode's file format), then validates them.
    #[cfg(feature = "local")]
    pub fn from_toml(text: &str) -> Result<Self, SettingsParseError> {
        let settings: Self =
            toml::from_str(text).map_err(|e| SettingsParseError::Toml(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Every problem with these settings, each naming its field; `Ok` when there is none.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_string(),
                message,
            })
        };
        if !is_valid_id(&self.id) {
            fail(
                "id",
                "must be 1–64 characters of letters, digits, '-' or '_'".into(),
            );
        }
        for (field, url) in [
            ("cin7.base_url", &self.cin7.base_url),
            ("gss.base_url", &self.gss.base_url),
        ] {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => fail(field, format!("{url:?} is not an http(s) URL")),
            }
        }
        for (field, value) in [
            ("cin7.api_username", &self.cin7.api_username),
            ("cin7.api_key", &self.cin7.api_key.0),
            ("gss.site_id", &self.gss.site_id),
            ("gss.access_key", &self.gss.access_key.0),
            ("webhook.secret", &self.webhook.secret.0),
        ] {
            if value.trim().is_empty() {
                fail(field, "must not be empty".into());
            }
        }
        let email = &self.gss.support_email;
        if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
            fail(
                "gss.support_email",
                format!("{email:?} is not an email address"),
            );
        }
        let centres = self
            .gss
            .cost_centre
            .iter()
            .map(|c| ("gss.cost_centre".to_string(), c))
            .chain(
                self.gss
                    .cost_centre_by_branch
                    .iter()
                    .map(|(b, c)| (format!("gss.cost_centre_by_branch.{b}"), c)),
            );
        for (field, name) in centres {
            if name.trim().is_empty() {
                fail(&field, "must not be empty".into());
            } else if name.chars().count() > limits::COST_CENTRE {
                fail(
                    &field,
                    format!(
                        "is {} characters; GoSweetSpot takes at most {}",
                        name.chars().count(),
                        limits::COST_CENTRE
                    ),
                );
            }
        }
        for branch in self.gss.cost_centre_by_branch.keys() {
            if branch.parse::<i64>().is_err() {
                fail(
                    &format!("gss.cost_centre_by_branch.{branch}"),
                    "keys must be CIN7 branch ids (numbers)".into(),
                );
            }
        }
        if let Some(param) = &self.webhook.signature_param
            && param.trim().is_empty()
        {
            fail(
                "webhook.signature_param",
                "must not be empty when set (leave it out to take the single query parameter)"
                    .into(),
            );
        }
        if self.import.max_age_days == 0 {
            fail("import.max_age_days", "must be at least 1".into());
        }
        if self.import.overlap_seconds > MAX_OVERLAP_SECONDS {
            fail(
                "import.overlap_seconds",
                format!(
                    "{} is more than a day ({MAX_OVERLAP_SECONDS})",
                    self.import.overlap_seconds
                ),
            );
        }
        if let Err(e) = self
            .import
            .business_hours
            .parse::<crate::schedule::policy::BusinessHours>()
        {
            fail("import.business_hours", e.to_string());
        }
        if self.import.timezone.parse::<chrono_tz::Tz>().is_err() {
            fail(
                "import.timezone",
                format!(
                    "{:?} is not an IANA time zone such as \"Pacific/Auckland\"",
                    self.import.timezone
                ),
            );
        }
        for (field, name) in [
            ("import.custom_field_1", &self.import.custom_field_1),
            ("import.custom_field_2", &self.import.custom_field_2),
        ] {
            if !name.is_empty() && crate::cin7::model::copyable_field(name).is_none() {
                fail(
                    field,
                    format!(
                        "{name:?} is not a CIN7 order field this can copy: one of {} or customFields.<key>",
                        crate::cin7::model::COPYABLE_FIELDS.join(", ")
                    ),
                );
            }
        }
        if !(1..=100).contains(&self.import.poll_budget_percent) {
            fail(
                "import.poll_budget_percent",
                format!(
                    "{} is not between 1 and 100",
                    self.import.poll_budget_percent
                ),
            );
        }
        let country = &self.import.default_country;
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
            fail(
                "import.default_country",
                format!("{country:?} is not an ISO 3166 alpha-2 code such as \"NZ\""),
            );
        }
        for stage in self
            .import
            .stages
            .iter()
            .filter(|s| self.import.exclude_stages.contains(s))
        {
            fail(
                "import.stages",
                format!("{stage:?} is also in import.exclude_stages"),
            );
        }
        if let TrackingUrlField::CustomField(key) = &self.write_back.tracking_url_field
            && key.trim().is_empty()
        {
            fail(
                "write_back.tracking_url_field",
                "customFields needs a key, e.g. \"customFields.orders_1000\"".into(),
            );
        }
        for (centre, markup) in &self.write_back.markup_by_cost_centre {
            let field = format!("write_back.markup_by_cost_centre.{centre}");
            match markup {
                Markup::Percent(p) if *p < Decimal::ZERO || *p > Decimal::from(500) => {
                    fail(&field, format!("percent {p} is out of range 0–500"))
                }
                Markup::Fixed(f) if *f < Decimal::ZERO => {
                    fail(&field, format!("fixed markup {f} must not be negative"))
                }
                _ => {}
            }
            if centre.chars().count() > limits::COST_CENTRE {
                fail(
                    &field,
                    format!(
                        "cost centre name is longer than GoSweetSpot's {} characters",
                        limits::COST_CENTRE
                    ),
                );
            }
        }
        for (from, to) in &self.write_back.carrier_names {
            let field = format!("write_back.carrier_names.{from}");
            if from.trim().is_empty() {
                fail(
                    "write_back.carrier_names",
                    "a GoSweetSpot carrier name must not be empty".into(),
                );
            }
            if to.trim().is_empty() {
                fail(
                    &field,
                    "the carrier name written to CIN7 must not be empty".into(),
                );
            } else if to.chars().count() > CARRIER_NAME_MAX {
                fail(
                    &field,
                    format!("is longer than {CARRIER_NAME_MAX} characters"),
                );
            }
        }
        if let Some(trigger) = &self.write_back.shopify_trigger
            && crate::settings::shopify_link_id(trigger).is_none()
        {
            fail(
                "write_back.shopify_trigger",
                "expected the idCustomerAppsLink number or the whole link copied from CIN7".into(),
            );
        }
        if self.write_back.shopify_trigger.is_some() && !self.write_back.send_ticket_number {
            fail(
                "write_back.shopify_trigger",
                "needs write_back.send_ticket_number = true (CIN7 updates Shopify when the order is dispatched)".into(),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(InvalidSettings(errors))
        }
    }

    /// The cost centre for an order of this branch: the branch's own, else the default.
    pub fn cost_centre_for(&self, branch_id: Option<i64>) -> Option<&str> {
        branch_id
            .and_then(|b| self.gss.cost_centre_by_branch.get(&b.to_string()))
            .or(self.gss.cost_centre.as_ref())
            .map(String::as_str)
    }
}

/// Whether `id` has the shape of an integration id: 1–64 letters, digits, `-` or `_` (it is a
/// key in the store and a segment of the webhook's path).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The `idCustomerAppsLink` value in a Shopify trigger setting: the bare number, or the number
/// taken from a whole link copied from CIN7's address bar.
pub fn shopify_link_id(trigger: &str) -> Option<String> {
    let trigger = trigger.trim();
    if !trigger.is_empty() && trigger.chars().all(|c| c.is_ascii_digit()) {
        return Some(trigger.to_string());
    }
    let url = url::Url::parse(trigger).ok()?;
    url.query_pairs()
        .find(|(k, _)| k.eq_ignore_ascii_case("idCustomerAppsLink"))
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> serde_json::Value {
        json!({
            "id": "acme-nz",
            "name": "Acme NZ",
            "cin7": {"api_username": "AcmeNZ", "api_key": "acme/cin7-key"},
            "gss": {"site_id": "4180", "access_key": "acme/gss-key", "support_email": "ops@acme.nz"},
            "webhook": {"secret": "acme/webhook-secret"}
        })
    }

    fn problems(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
        let mut v = valid();
        edit(&mut v);
        match IntegrationSettings::from_json(&v.to_string()) {
            Ok(_) => Vec::new(),
            Err(SettingsParseError::Invalid(InvalidSettings(errors))) => {
                errors.iter().map(ToString::to_string).collect()
            }
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn defaults_follow_the_specification() {
        let s = IntegrationSettings::from_json(&valid().to_string()).unwrap();
        assert!(s.enabled);
        assert_eq!(s.cin7.base_url, "https://api.cin7.com/api");
        assert_eq!(s.gss.base_url, "https://api.gosweetspot.com");
        assert_eq!(
            s.import.exclude_stages,
            ["Dispatched", "Declined", "On Hold", "Awaiting Payment"]
        );
        assert_eq!(s.import.max_age_days, 60);
        assert_eq!(s.import.default_country, "NZ");
        assert_eq!(s.import.overlap_seconds, 60);
        assert_eq!(s.import.business_hours, "07:00-19:00");
        assert_eq!(s.import.timezone, "Pacific/Auckland");
        assert_eq!(s.import.poll_budget_percent, 40);
        assert!(!s.import.block_batched_items);
        assert!(!s.write_back.send_ticket_number);
        assert_eq!(
            s.write_back.tracking_url_field,
            TrackingUrlField::InternalComments
        );
        assert_eq!(s.write_back.freight, FreightMode::Off);
        assert_eq!(s.webhook.signature_param, None);
    }

    #[test]
    fn each_invalid_case_names_its_field() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["cin7"]["base_url"] = json!("not a url")),
                "cin7.base_url: \"not a url\" is not an http(s) URL",
            ),
            (
                Box::new(|v| v["gss"]["base_url"] = json!("ftp://x")),
                "gss.base_url: \"ftp://x\" is not an http(s) URL",
            ),
            (
                Box::new(|v| v["cin7"]["api_username"] = json!(" ")),
                "cin7.api_username: must not be empty",
            ),
            (
                Box::new(|v| v["webhook"]["secret"] = json!("")),
                "webhook.secret: must not be empty",
            ),
            (
                Box::new(|v| v["gss"]["support_email"] = json!("ops")),
                "gss.support_email: \"ops\" is not an email address",
            ),
            (
                Box::new(|v| v["id"] = json!("a b")),
                "id: must be 1–64 characters",
            ),
            (
                Box::new(|v| v["gss"]["cost_centre"] = json!("x".repeat(61))),
                "gss.cost_centre: is 61 characters; GoSweetSpot takes at most 60",
            ),
            (
                Box::new(|v| v["gss"]["cost_centre_by_branch"] = json!({"3": "y".repeat(70)})),
                "gss.cost_centre_by_branch.3: is 70 characters",
            ),
            (
                Box::new(|v| v["gss"]["cost_centre_by_branch"] = json!({"north": "Online"})),
                "gss.cost_centre_by_branch.north: keys must be CIN7 branch ids",
            ),
            (
                Box::new(|v| v["import"] = json!({"default_country": "New Zealand"})),
                "import.default_country: \"New Zealand\" is not an ISO 3166 alpha-2 code",
            ),
            (
                Box::new(|v| v["import"] = json!({"max_age_days": 0})),
                "import.max_age_days: must be at least 1",
            ),
            (
                Box::new(|v| v["import"] = json!({"overlap_seconds": 86401})),
                "import.overlap_seconds: 86401 is more than a day",
            ),
            (
                Box::new(|v| v["import"] = json!({"business_hours": "7-19"})),
                "import.business_hours: \"7-19\" is not \"HH:MM-HH:MM\"",
            ),
            (
                Box::new(|v| v["import"] = json!({"business_hours": "09:00-09:00"})),
                "import.business_hours: opens and closes at the same time",
            ),
            (
                Box::new(|v| v["import"] = json!({"timezone": "NZST"})),
                "import.timezone: \"NZST\" is not an IANA time zone such as \"Pacific/Auckland\"",
            ),
            (
                Box::new(|v| v["import"] = json!({"poll_budget_percent": 0})),
                "import.poll_budget_percent: 0 is not between 1 and 100",
            ),
            (
                Box::new(|v| v["import"] = json!({"stages": ["Dispatched"]})),
                "import.stages: \"Dispatched\" is also in import.exclude_stages",
            ),
            (
                Box::new(|v| {
                    v["write_back"] = json!({"markup_by_cost_centre": {"Online": {"percent": 501}}})
                }),
                "write_back.markup_by_cost_centre.Online: percent 501 is out of range 0–500",
            ),
            (
                Box::new(|v| {
                    v["write_back"] = json!({"markup_by_cost_centre": {"Online": {"fixed": -1}}})
                }),
                "write_back.markup_by_cost_centre.Online: fixed markup -1 must not be negative",
            ),
            (
                Box::new(|v| v["write_back"] = json!({"tracking_url_field": "customFields."})),
                "write_back.tracking_url_field: customFields needs a key",
            ),
            (
                Box::new(
                    |v| v["write_back"] = json!({"send_ticket_number": true, "shopify_trigger": "https://go.cin7.com/x.aspx?foo=1"}),
                ),
                "write_back.shopify_trigger: expected the idCustomerAppsLink number",
            ),
            (
                Box::new(|v| v["write_back"] = json!({"shopify_trigger": "800541"})),
                "write_back.shopify_trigger: needs write_back.send_ticket_number = true",
            ),
            (
                Box::new(|v| v["import"] = json!({"custom_field_2": "freightDescripton"})),
                "import.custom_field_2: \"freightDescripton\" is not a CIN7 order field this can copy: one of reference, customerOrderNo, freightDescription",
            ),
            (
                Box::new(|v| v["import"] = json!({"custom_field_1": "customFields. "})),
                "import.custom_field_1: \"customFields. \" is not a CIN7 order field",
            ),
            (
                Box::new(|v| v["webhook"]["signature_param"] = json!("")),
                "webhook.signature_param: must not be empty when set",
            ),
            (
                Box::new(|v| v["write_back"] = json!({"carrier_names": {"Post Haste": " "}})),
                "write_back.carrier_names.Post Haste: the carrier name written to CIN7 must not be empty",
            ),
            (
                Box::new(|v| v["write_back"] = json!({"carrier_names": {"": "NZ Post"}})),
                "write_back.carrier_names: a GoSweetSpot carrier name must not be empty",
            ),
            (
                Box::new(|v| {
                    v["write_back"] = json!({"carrier_names": {"Post Haste": "x".repeat(101)}})
                }),
                "write_back.carrier_names.Post Haste: is longer than 100 characters",
            ),
        ];
        for (edit, expected) in cases {
            let found = problems(edit);
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "expected {expected:?} in {found:?}"
            );
        }
    }

    #[test]
    fn unknown_modes_and_fields_are_named_by_serde() {
        let found = problems(|v| v["write_back"] = json!({"freight": "free"}));
        assert!(found[0].contains("unknown variant `free`"), "{found:?}");
        assert!(
            found[0].contains("off") && found[0].contains("marked_up"),
            "{found:?}"
        );
        let found = problems(|v| v["write_back"] = json!({"tracking_url_field": "notes"}));
        assert!(found[0].contains("internalComments"), "{found:?}");
        let found = problems(|v| v["import"] = json!({"block_batch_items": true}));
        assert!(
            found[0].contains("unknown field `block_batch_items`"),
            "{found:?}"
        );
    }

    #[test]
    fn toml_is_read_like_json() {
        let text = r#"
            id = "acme-nz"
            [cin7]
            api_username = "AcmeNZ"
            api_key = "ACME_CIN7_KEY"
            [gss]
            site_id = "4180"
            access_key = "ACME_GSS_KEY"
            support_email = "ops@acme.nz"
            cost_centre_by_branch = { "3" = "Online" }
            [webhook]
            secret = "ACME_WEBHOOK_SECRET"
            [write_back]
            freight = "marked_up"
            tracking_url_field = "customFields.orders_1000"
            markup_by_cost_centre.Online = { percent = "12.5" }
        "#;
        let s = IntegrationSettings::from_toml(text).unwrap();
        assert_eq!(s.write_back.freight, FreightMode::MarkedUp);
        assert_eq!(
            s.write_back.tracking_url_field,
            TrackingUrlField::CustomField("orders_1000".into())
        );
        assert_eq!(
            s.write_back.markup_by_cost_centre["Online"],
            Markup::Percent(Decimal::new(125, 1))
        );
        let err = IntegrationSettings::from_toml("id = ").unwrap_err();
        assert!(
            err.to_string().starts_with("settings are not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn shopify_trigger_accepts_the_number_or_the_copied_link() {
        assert_eq!(shopify_link_id("800541").as_deref(), Some("800541"));
        assert_eq!(
            shopify_link_id("https://go.cin7.com/Cloud/TransactionEntry/TransactionEntry.aspx?idCustomerAppsLink=800541&OrderId=12").as_deref(),
            Some("800541")
        );
        assert_eq!(shopify_link_id("abc"), None);
        assert_eq!(shopify_link_id(""), None);
    }

    #[test]
    fn cost_centre_by_branch_or_default() {
        let mut s = IntegrationSettings::from_json(&valid().to_string()).unwrap();
        s.gss.cost_centre = Some("Online".into());
        s.gss
            .cost_centre_by_branch
            .insert("7".into(), "Wholesale".into());
        assert_eq!(s.cost_centre_for(Some(7)), Some("Wholesale"));
        assert_eq!(s.cost_centre_for(Some(3)), Some("Online"));
        assert_eq!(s.cost_centre_for(None), Some("Online"));
    }
}
