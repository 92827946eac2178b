//! How both services list: oldest first, a page of `limit` rows (1 to
//! [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]), continued after `cursor`, the
//! id of the previous page's last row. Ids are UUIDv7, so id order is
//! creation order and a cursor stays valid while rows are added. One row
//! more than the page is fetched, so a page knows whether another follows
//! without counting.

use uuid::Uuid;

use crate::problem::{FieldError, Problem};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The page a client asked for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// Rows after this id.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// The `limit` and `cursor` query parameters, or a 422 naming each bad one.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match cursor.map(Uuid::parse_str) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this service returned",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        Ok(Self {
            limit: limit as usize,
            after,
        })
    }

    /// How many rows to fetch: one more than the page.
    pub fn rows(&self) -> usize {
        self.limit + 1
    }

    /// The page out of the rows fetched, and the cursor of the next page
    /// (`None` on the last one).
    pub fn page<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> Uuid) -> (Vec<T>, Option<String>) {
        if rows.len() <= self.limit {
            return (rows, None);
        }
        rows.truncate(self.limit);
        let next = rows.last().map(|row| id(row).to_string());
        (rows, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_checked_together() {
        let page = PageRequest::parse(None, None).unwrap();
        assert_eq!((page.limit, page.after, page.rows()), (20, None, 21));
        let id = Uuid::now_v7();
        let page = PageRequest::parse(Some(100), Some(&id.to_string())).unwrap();
        assert_eq!((page.limit, page.after), (100, Some(id)));
        let problem = PageRequest::parse(Some(0), Some("xyz")).unwrap_err();
        assert_eq!(problem.status, 422);
        let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "cursor"]);
        assert!(PageRequest::parse(Some(101), None).is_err());
    }

    #[test]
    fn a_full_page_points_at_the_next() {
        let page = PageRequest::parse(Some(2), None).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let (rows, next) = page.page(ids.clone(), |id| *id);
        assert_eq!(rows, ids[..2]);
        assert_eq!(next, Some(ids[1].to_string()));
        let (rows, next) = page.page(ids[..2].to_vec(), |id| *id);
        assert_eq!((rows.len(), next), (2, None));
    }
}
