//! Where a pull reads from and how it pages: by key (the last second read, less the orders of
//! that second already read), in the form CIN7 writes its times.

use crate::cin7::model::OrderRow;
use crate::cin7::query::{Direction, ListQuery, MAX_ROWS, Where};
use crate::settings::IntegrationSettings;
use crate::store::PullCursor;
use crate::timestamp::Timestamp;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a pull's first page starts: where the last pull stopped when it used up its slice (a
/// continuation re-reads nothing), else [`reads_from`].
pub fn first_page(
    cursor: Option<&PullCursor>,
    settings: &IntegrationSettings,
    now: DateTime<Utc>,
) -> PageStart {
    match cursor.and_then(|c| c.resume.clone()) {
        Some(resume) => resume,
        None => PageStart::new(reads_from(cursor, settings, now)),
    }
}

/// Where a pull reads from: the cursor less `import.overlap_seconds`, in the form CIN7 wrote
/// the cursor, or `import.start_from` (default: seven days before `now`) for a first pull.
pub fn reads_from(
    cursor: Option<&PullCursor>,
    settings: &IntegrationSettings,
    now: DateTime<Utc>,
) -> Timestamp {
    match cursor {
        Some(c) => c
            .modified_since
            .earlier_by(chrono::Duration::seconds(i64::from(
                settings.import.overlap_seconds,
            ))),
        None => Timestamp::utc(
            settings
                .import
                .start_from
                .unwrap_or(now - chrono::Duration::days(7)),
        ),
    }
}

/// Where a list page starts.
///
/// Pages are read by key, not by offset: the next page asks for the orders modified at or after
/// the second of the last order read, less the orders of that second already read. Offsets are
/// not stable while a run pages: an order modified meanwhile (dispatched by the write-back, or
/// edited by the merchant) moves to the end of the list, every later order moves one place
/// forward, and the next page by offset would skip one of them — for good, since the cursor
/// moves past it. When the page ends on the filter's own second, or the `id<>…` exclusions of
/// the orders at the last second would make the request URL too long for CIN7's server, the
/// next page is the next page of the same filter (by offset, as before: only a modification
/// during such a run of orders on one second could shift it).
///
/// Every `modifiedDate>=` value is written in the form CIN7 wrote the times it returned (see
/// [`crate::timestamp`]). When a page shows times at a smaller UTC offset than the value was
/// written in (the clocks went back, or the cursor was saved in another form), the same start
/// is asked again written at that offset: were CIN7 to compare local wall-clock times, the
/// repeated hour after the change would otherwise be skipped. Re-read orders cost no
/// GoSweetSpot call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageStart {
    pub(super) since: Timestamp,
    pub(super) excluded: Vec<i64>,
    pub(super) page: u32,
}

/// The keys of a page's rows that paging goes by: each row's id and `modifiedDate`.
pub fn keys(rows: &[OrderRow]) -> Vec<(Option<i64>, Option<Timestamp>)> {
    rows.iter().map(|r| (r.id(), r.modified_date())).collect()
}

/// Where reading goes after a page ([`PageStart::next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The same start, written at the smaller offset CIN7 wrote the page's times at.
    AtSmallerOffset(PageStart),
    /// The page after a full one.
    After(PageStart),
    /// The last page was read.
    Done,
}

impl PageStart {
    /// The first page from `since`.
    pub fn new(since: Timestamp) -> Self {
        Self {
            since: since.whole_second(),
            excluded: Vec::new(),
            page: 1,
        }
    }

    /// The list call of this page, asking for `fields`.
    pub fn query(&self, fields: &[&'static str]) -> ListQuery {
        ListQuery {
            filter: Where::new()
                .modified_since(&self.since)
                .excluding_ids(&self.excluded),
            order: Some(("modifiedDate", Direction::Asc)),
            fields: fields.to_vec(),
            page: self.page,
            rows: MAX_ROWS,
        }
    }

    /// Where the page after a full page of `rows` (id, `modifiedDate`) starts; `fits` says
    /// whether a start's request may be sent.
    fn after(
        &self,
        rows: &[(Option<i64>, Option<Timestamp>)],
        fits: impl Fn(&PageStart) -> bool,
    ) -> Self {
        let last = rows.last().and_then(|(_, m)| m.map(|t| t.whole_second()));
        if let Some(last) = last.filter(|l| l.instant() > self.since.instant()) {
            let at_last: Option<Vec<i64>> = rows
                .iter()
                .filter(|(_, m)| m.map(|t| t.whole_second().instant()) == Some(last.instant()))
                .map(|(id, _)| *id)
                .collect();
            if let Some(excluded) = at_last {
                let keyed = Self {
                    since: last,
                    excluded,
                    page: 1,
                };
                if fits(&keyed) {
                    return keyed;
                }
            }
        }
        Self {
            page: self.page + 1,
            ..self.clone()
        }
    }

    /// Where reading goes after a page of `rows` (id, `modifiedDate`) read from here: the same
    /// start again at a smaller offset when CIN7 wrote times at one, else the next page when
    /// the page was full, else nowhere. `fits` says whether a start's request may be sent.
    pub fn next(
        &self,
        rows: &[(Option<i64>, Option<Timestamp>)],
        full: bool,
        fits: impl Fn(&PageStart) -> bool,
    ) -> Next {
        if let Some(again) = self.at_smaller_offset(rows).filter(|s| fits(s)) {
            return Next::AtSmallerOffset(again);
        }
        if full {
            Next::After(self.after(rows, fits))
        } else {
            Next::Done
        }
    }

    /// The same start written at the smallest UTC offset among `rows`, when that is smaller
    /// than the one it was written at (see the type's documentation).
    fn at_smaller_offset(&self, rows: &[(Option<i64>, Option<Timestamp>)]) -> Option<Self> {
        let written = self.since.form().zone.offset_seconds();
        let smallest = rows
            .iter()
            .filter_map(|(_, m)| *m)
            .min_by_key(|t| t.form().zone.offset_seconds())?;
        (smallest.form().zone.offset_seconds() < written).then(|| Self {
            since: self.since.in_form(smallest.form()),
            excluded: self.excluded.clone(),
            page: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-20 22:00:`s`.`ms` NZDT, written as CIN7's samples write it.
    fn t(s: u32, ms: u32) -> Option<Timestamp> {
        Timestamp::parse(&format!("2026-11-20T22:00:{s:02}.{ms:03}000+13:00"))
            .ok()
            .flatten()
    }

    fn always(_: &PageStart) -> bool {
        true
    }

    #[test]
    fn the_next_page_starts_at_the_last_second_less_what_was_read_there() {
        let start = PageStart::new(t(0, 0).unwrap());
        let rows = [
            (Some(1), t(1, 0)),
            (Some(2), t(2, 100)),
            (Some(3), t(2, 900)),
        ];
        let next = start.after(&rows, always);
        assert_eq!(next.since, t(2, 0).unwrap());
        assert_eq!(next.excluded, vec![2, 3]);
        assert_eq!(next.page, 1);
        assert_eq!(
            next.query(crate::cin7::model::SALES_ORDER_FIELDS)
                .filter
                .build()
                .unwrap(),
            "modifiedDate>='2026-11-20T22:00:02.000000+13:00' AND id<>2 AND id<>3",
            "written in the form CIN7 wrote"
        );
    }

    #[test]
    fn a_page_on_the_filters_own_second_or_a_url_too_long_pages_by_offset() {
        let start = PageStart::new(t(5, 0).unwrap());
        let same = [(Some(1), t(5, 0)), (Some(2), t(5, 500))];
        let next = start.after(&same, always);
        assert_eq!((next.since, next.page), (start.since, 2));
        assert!(next.excluded.is_empty());

        let ties: Vec<_> = (0..120).map(|id| (Some(id), t(9, 0))).collect();
        let next = start.after(&ties, |s| s.excluded.len() <= 100);
        assert_eq!((next.since, next.page), (start.since, 2));
        assert!(next.excluded.is_empty());

        let unreadable = [(Some(1), t(6, 0)), (None, t(7, 0))];
        let next = start.after(&unreadable, always);
        assert_eq!(
            (next.since, next.page),
            (start.since, 2),
            "an id missing at the last second"
        );
    }

    #[test]
    fn times_at_a_smaller_offset_ask_the_same_start_again_at_that_offset() {
        let start = PageStart::new(t(0, 0).unwrap());
        // After the clocks went back an hour (NZDT → NZST).
        let standard = Timestamp::parse("2026-11-20T21:30:00.000000+12:00")
            .unwrap()
            .unwrap();
        let rows = [(Some(1), t(1, 0)), (Some(2), Some(standard))];
        let again = start.at_smaller_offset(&rows).unwrap();
        assert_eq!(again.since.instant(), start.since.instant());
        assert_eq!(again.since.text(), "2026-11-20T21:00:00.000000+12:00");
        assert_eq!(again.page, 1);
        assert_eq!(again.at_smaller_offset(&rows), None, "asked once");
        assert_eq!(start.at_smaller_offset(&rows[..1]), None);
        let utc = PageStart::new(Timestamp::utc(start.since.instant()));
        assert_eq!(
            utc.at_smaller_offset(&rows),
            None,
            "+13:00 is not smaller than Z"
        );
    }
}
