//! Query parameters for `GET /v1/SalesOrders`: a `where` clause built only from typed
//! conditions (string values single-quoted with embedded quotes doubled, so no value can end
//! its literal early), plus `order`, `fields`, `page` and `rows`.

use crate::timestamp::Timestamp;

/// The largest page CIN7 serves (`rows` maximum, confirmed).
pub const MAX_ROWS: u32 = 250;

/// A conjunction of conditions for the `where` parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Where {
    conditions: Vec<String>,
}

impl Where {
    /// An empty clause (matches everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// `modifiedDate>='…'`, the timestamp written in its own form (the form CIN7 returned).
    pub fn modified_since(mut self, since: &Timestamp) -> Self {
        self.conditions
            .push(format!("modifiedDate>={}", quote(&since.text())));
        self
    }

    /// `id=<n>`.
    pub fn id(mut self, id: i64) -> Self {
        self.conditions.push(format!("id={id}"));
        self
    }

    /// `id IN (…)`; an empty list matches nothing (`id IN (0)`: CIN7 ids start at 1).
    pub fn id_in(mut self, ids: &[i64]) -> Self {
        let list = if ids.is_empty() {
            "0".to_string()
        } else {
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        };
        self.conditions.push(format!("id IN ({list})"));
        self
    }

    /// `id<>…` for each id: the orders already read.
    pub fn excluding_ids(mut self, ids: &[i64]) -> Self {
        self.conditions
            .extend(ids.iter().map(|id| format!("id<>{id}")));
        self
    }

    /// `reference='…'`, safely quoted.
    pub fn reference(mut self, reference: &str) -> Self {
        self.conditions
            .push(format!("reference={}", quote(reference)));
        self
    }

    /// The clause text, or `None` when there is no condition.
    pub fn build(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }
}

/// Quotes a string literal for a `where` clause: wrapped in single quotes, each `'` doubled.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Sort direction for `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// The parameters of one list call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub filter: Where,
    /// Field and direction for `order`; `None` leaves CIN7's default.
    pub order: Option<(&'static str, Direction)>,
    /// Field names for `fields`; empty asks for every field.
    pub fields: Vec<&'static str>,
    pub page: u32,
    pub rows: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            filter: Where::new(),
            order: None,
            fields: Vec::new(),
            page: 1,
            rows: MAX_ROWS,
        }
    }
}

impl ListQuery {
    /// The query-string pairs, in a stable order.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.fields.is_empty() {
            out.push(("fields", self.fields.join(",")));
        }
        if let Some(clause) = self.filter.build() {
            out.push(("where", clause));
        }
        if let Some((field, dir)) = self.order {
            let dir = match dir {
                Direction::Asc => "ASC",
                Direction::Desc => "DESC",
            };
            out.push(("order", format!("{field} {dir}")));
        }
        out.push(("page", self.page.to_string()));
        out.push(("rows", self.rows.to_string()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn builds_the_incremental_poll_clause() {
        let since = Timestamp::utc(Utc.with_ymd_and_hms(2024, 5, 2, 1, 2, 11).unwrap());
        let w = Where::new().modified_since(&since).reference("O'Brien #1");
        assert_eq!(
            w.build().unwrap(),
            "modifiedDate>='2024-05-02T01:02:11Z' AND reference='O''Brien #1'"
        );
        assert_eq!(Where::new().build(), None);
        assert_eq!(Where::new().id_in(&[3, 1]).build().unwrap(), "id IN (3,1)");
        let local = Timestamp::parse("2024-05-02T13:02:11.518448+12:00")
            .unwrap()
            .unwrap();
        assert_eq!(
            Where::new().modified_since(&local).build().unwrap(),
            "modifiedDate>='2024-05-02T13:02:11.518448+12:00'"
        );
    }

    #[test]
    fn params_are_stable() {
        let q = ListQuery {
            filter: Where::new().id(5),
            order: Some(("modifiedDate", Direction::Asc)),
            fields: vec!["id", "reference"],
            page: 2,
            rows: 250,
        };
        assert_eq!(
            q.params(),
            vec![
                ("fields", "id,reference".to_string()),
                ("where", "id=5".to_string()),
                ("order", "modifiedDate ASC".to_string()),
                ("page", "2".to_string()),
                ("rows", "250".to_string()),
            ]
        );
    }
}
