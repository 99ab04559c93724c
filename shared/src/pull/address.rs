//! A CIN7 delivery address in GoSweetSpot's fields, country-aware. Pure.
//!
//! GoSweetSpot wants `address1` = the building or unit, `address2` = the street, `suburb` = the
//! suburb or town, and `city` = the city — or, where a country has states (Australia, the
//! United States, Canada), the state's abbreviation, with the town in `suburb`. CIN7 has two
//! address lines, a city and `deliveryState`, which is the state or region (never a suburb),
//! and no suburb field: for New Zealand orders (Shopify's among them) the suburb usually sits
//! in the second address line, unless that line is a unit or building.

/// The address fields of a customer order, before GoSweetSpot's length limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    pub address1: String,
    pub address2: String,
    pub suburb: String,
    pub city: String,
}

/// CIN7's delivery address fields, whitespace already collapsed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cin7Address<'a> {
    pub line1: &'a str,
    pub line2: &'a str,
    pub city: &'a str,
    pub state: &'a str,
}

/// Maps an address for a destination country (ISO alpha-2).
pub fn map_address(country: &str, a: Cin7Address<'_>) -> Address {
    // A unit in the first line with the street in the second (some shops write it so).
    let (street, second) =
        if is_unit_or_building(a.line1) && !a.line2.is_empty() && !is_unit_or_building(a.line2) {
            (a.line2, a.line1)
        } else {
            (a.line1, a.line2)
        };
    match states(country) {
        Some(table) => {
            let state = abbreviate(table, a.state);
            if state.is_empty() {
                Address {
                    address1: second.to_string(),
                    address2: street.to_string(),
                    suburb: String::new(),
                    city: a.city.to_string(),
                }
            } else {
                Address {
                    address1: second.to_string(),
                    address2: street.to_string(),
                    suburb: a.city.to_string(),
                    city: state,
                }
            }
        }
        None => {
            let (address1, suburb) = if is_unit_or_building(second) {
                (second, "")
            } else {
                ("", second)
            };
            Address {
                address1: address1.to_string(),
                address2: street.to_string(),
                suburb: suburb.to_string(),
                city: a.city.to_string(),
            }
        }
    }
}

/// The words that start a unit or building line (case-insensitive, as whole words).
const UNIT_WORDS: [&str; 10] = [
    "unit",
    "flat",
    "apt",
    "apartment",
    "level",
    "lvl",
    "suite",
    "floor",
    "building",
    "bldg",
];

/// Whether an address line names a unit or building: one of the unit words followed by its
/// number or letter ("Unit 3", "Apt. 4B", "Level 2, Fisher House", "Building C" — but not the
/// suburb "Flat Bush"), or the `12/` or `3A/` form.
pub fn is_unit_or_building(line: &str) -> bool {
    let line = line.trim();
    let word_len = line
        .char_indices()
        .find(|(_, c)| !c.is_alphabetic())
        .map_or(line.len(), |(i, _)| i);
    let word = line[..word_len].to_lowercase();
    if UNIT_WORDS.contains(&word.as_str()) {
        let rest = line[word_len..].trim_start_matches(['.', ' ', '#', ':']);
        let label: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '-')
            .collect();
        let letters_only = label.chars().all(char::is_alphabetic);
        return !label.is_empty()
            && (label.chars().any(|c| c.is_ascii_digit()) || (letters_only && label.len() <= 2));
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let mut rest = line[digits..].chars();
    match rest.next() {
        Some('/') => true,
        Some(c) if c.is_ascii_alphabetic() => rest.next() == Some('/'),
        _ => false,
    }
}

/// A state as GoSweetSpot wants it: the abbreviation when the text is one (any case) or a
/// state's full name (any case, accents and punctuation ignored); otherwise as given.
fn abbreviate(table: &[(&str, &str)], state: &str) -> String {
    let key = squash(state);
    table
        .iter()
        .find(|(code, name)| squash(code) == key || squash(name) == key)
        .map_or_else(|| state.trim().to_string(), |(code, _)| (*code).to_string())
}

/// Lower case, letters only, common accents folded ("Québec" → "quebec").
fn squash(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'É' | 'È' | 'Ê' => 'e',
            'à' | 'â' | 'À' | 'Â' => 'a',
            'ô' | 'Ô' => 'o',
            'î' | 'Î' => 'i',
            'û' | 'ù' | 'Û' | 'Ù' => 'u',
            'ç' | 'Ç' => 'c',
            other => other,
        })
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The states of a country that has them for GoSweetSpot's `city`.
fn states(country: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match country {
        "AU" => Some(AU),
        "US" => Some(US),
        "CA" => Some(CA),
        _ => None,
    }
}

const AU: &[(&str, &str)] = &[
    ("ACT", "Australian Capital Territory"),
    ("NSW", "New South Wales"),
    ("NT", "Northern Territory"),
    ("QLD", "Queensland"),
    ("SA", "South Australia"),
    ("TAS", "Tasmania"),
    ("VIC", "Victoria"),
    ("WA", "Western Australia"),
    ("JBT", "Jervis Bay Territory"),
];

const CA: &[(&str, &str)] = &[
    ("AB", "Alberta"),
    ("BC", "British Columbia"),
    ("MB", "Manitoba"),
    ("NB", "New Brunswick"),
    ("NL", "Newfoundland and Labrador"),
    ("NS", "Nova Scotia"),
    ("NT", "Northwest Territories"),
    ("NU", "Nunavut"),
    ("ON", "Ontario"),
    ("PE", "Prince Edward Island"),
    ("QC", "Quebec"),
    ("SK", "Saskatchewan"),
    ("YT", "Yukon"),
];

const US: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
    ("AS", "American Samoa"),
    ("GU", "Guam"),
    ("MP", "Northern Mariana Islands"),
    ("PR", "Puerto Rico"),
    ("VI", "U.S. Virgin Islands"),
    ("AA", "Armed Forces Americas"),
    ("AE", "Armed Forces Europe"),
    ("AP", "Armed Forces Pacific"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(country: &str, line1: &str, line2: &str, city: &str, state: &str) -> [String; 4] {
        let a = map_address(
            country,
            Cin7Address {
                line1,
                line2,
                city,
                state,
            },
        );
        [a.address1, a.address2, a.suburb, a.city]
    }

    #[test]
    fn addresses_of_each_kind() {
        // (country, deliveryAddress1, deliveryAddress2, deliveryCity, deliveryState) →
        // (address1, address2, suburb, city)
        let cases: &[([&str; 5], [&str; 4])] = &[
            // New Zealand: the suburb in the second line; the region never in suburb.
            (
                ["NZ", "12 Queen Street", "Grey Lynn", "Auckland", "Auckland"],
                ["", "12 Queen Street", "Grey Lynn", "Auckland"],
            ),
            (
                ["NZ", "12 Queen Street", "Unit 3", "Auckland", "Auckland"],
                ["Unit 3", "12 Queen Street", "", "Auckland"],
            ),
            (
                [
                    "NZ",
                    "45 Lambton Quay",
                    "Level 2, Fisher House",
                    "Wellington",
                    "",
                ],
                ["Level 2, Fisher House", "45 Lambton Quay", "", "Wellington"],
            ),
            (
                ["NZ", "7 Ocean Road", "", "Mount Maunganui", "Bay of Plenty"],
                ["", "7 Ocean Road", "", "Mount Maunganui"],
            ),
            (
                [
                    "NZ",
                    "88 Riccarton Road",
                    "3A/",
                    "Christchurch",
                    "Canterbury",
                ],
                ["3A/", "88 Riccarton Road", "", "Christchurch"],
            ),
            (
                ["NZ", "Flat 2", "19 Cuba Street", "Wellington", "Wellington"],
                ["Flat 2", "19 Cuba Street", "", "Wellington"],
            ),
            (
                ["NZ", "RD 2", "Kaiwaka", "Kaiwaka", "Northland"],
                ["", "RD 2", "Kaiwaka", "Kaiwaka"],
            ),
            // A street named like a unit word is a street.
            (
                [
                    "NZ",
                    "5 Flatbush School Road",
                    "Flat Bush",
                    "Auckland",
                    "Auckland",
                ],
                ["", "5 Flatbush School Road", "Flat Bush", "Auckland"],
            ),
            // Australia: the town in suburb, the state's abbreviation in city.
            (
                ["AU", "1 George Street", "", "Sydney", "New South Wales"],
                ["", "1 George Street", "Sydney", "NSW"],
            ),
            (
                ["AU", "200 Collins St", "Suite 4", "Melbourne", "vic"],
                ["Suite 4", "200 Collins St", "Melbourne", "VIC"],
            ),
            (
                ["AU", "9 Hay Street", "", "Perth", "Western Australia"],
                ["", "9 Hay Street", "Perth", "WA"],
            ),
            (
                [
                    "AU",
                    "2 Mort St",
                    "",
                    "Braddon",
                    "Australian Capital Territory",
                ],
                ["", "2 Mort St", "Braddon", "ACT"],
            ),
            // The United States and Canada likewise.
            (
                ["US", "1 Infinite Loop", "Apt 4B", "Cupertino", "California"],
                ["Apt 4B", "1 Infinite Loop", "Cupertino", "CA"],
            ),
            (
                ["US", "350 5th Ave", "Floor 34", "New York", "NY"],
                ["Floor 34", "350 5th Ave", "New York", "NY"],
            ),
            (
                [
                    "US",
                    "1600 Pennsylvania Ave NW",
                    "",
                    "Washington",
                    "District of Columbia",
                ],
                ["", "1600 Pennsylvania Ave NW", "Washington", "DC"],
            ),
            (
                ["CA", "100 Queen St W", "", "Toronto", "Ontario"],
                ["", "100 Queen St W", "Toronto", "ON"],
            ),
            (
                ["CA", "1 Rue des Carrières", "", "Montréal", "Québec"],
                ["", "1 Rue des Carrières", "Montréal", "QC"],
            ),
            (
                [
                    "CA",
                    "10 Main St",
                    "",
                    "St. John's",
                    "Newfoundland and Labrador",
                ],
                ["", "10 Main St", "St. John's", "NL"],
            ),
            // A state we do not know is kept as given; none at all leaves the city as city.
            (
                ["AU", "3 Beach Rd", "", "Coolangatta", "Gold Coast Region"],
                ["", "3 Beach Rd", "Coolangatta", "Gold Coast Region"],
            ),
            (
                ["US", "3 Elm St", "", "Springfield", ""],
                ["", "3 Elm St", "", "Springfield"],
            ),
            // Elsewhere as in New Zealand.
            (
                [
                    "GB",
                    "10 Downing Street",
                    "Westminster",
                    "London",
                    "Greater London",
                ],
                ["", "10 Downing Street", "Westminster", "London"],
            ),
        ];
        for ([country, line1, line2, city, state], want) in cases {
            assert_eq!(
                mapped(country, line1, line2, city, state),
                want.map(String::from),
                "{country} {line1:?} {line2:?} {city:?} {state:?}"
            );
        }
    }

    #[test]
    fn unit_and_building_lines() {
        for yes in [
            "Unit 3",
            "unit 3",
            "UNIT 12B",
            "Flat 1",
            "Apt. 4",
            "Apartment 9",
            "Level 2",
            "Lvl 3",
            "Suite 100",
            "Floor 7",
            "Building C",
            "Bldg 4",
            "Unit A",
            "Level G",
            "Apt #12",
            "12/",
            "3A/",
            "12/34 Queen Street",
        ] {
            assert!(is_unit_or_building(yes), "{yes}");
        }
        for no in [
            "",
            "Grey Lynn",
            "12 Queen Street",
            "Units Road",
            "Flatbush",
            "Levelton Avenue",
            "Suitehaven",
            "123",
            "12AB/",
            "Buildings Lane",
            "Flat Bush",
            "Level Crossing Road",
            "Unit",
        ] {
            assert!(!is_unit_or_building(no), "{no}");
        }
    }

    #[test]
    fn every_state_abbreviates_from_its_name_and_its_code() {
        for (country, table) in [("AU", AU), ("US", US), ("CA", CA)] {
            for (code, name) in table {
                assert_eq!(abbreviate(table, name), *code, "{country} {name}");
                assert_eq!(abbreviate(table, &name.to_uppercase()), *code);
                assert_eq!(abbreviate(table, &code.to_lowercase()), *code);
            }
        }
    }
}
