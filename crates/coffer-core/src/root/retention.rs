//! Which backups to keep.
//!
//! [`decide`] is a pure function: it is given the backups found, the policy, the current
//! time and whether the backup that triggered pruning succeeded, and says for each backup
//! whether to keep it and why. It never touches the filesystem or reads the clock, so the
//! caller can show the decisions before acting on them.
//!
//! # Rules
//!
//! All periods are in UTC.
//!
//! - **Manual** backups are outside the policy: always kept and never counted by any rule,
//!   so a backup made by hand before an upgrade does not use up a daily slot. This differs
//!   from restic, which counts every snapshot.
//! - **Auto and legacy** backups are kept if *any* rule keeps them:
//!   - `keep_days = n`: taken at or after `now - n` days;
//!   - `keep_last = n`: the `n` newest complete ones;
//!   - `keep_daily`, `keep_weekly`, `keep_monthly`, `keep_yearly = n`, with restic's
//!     semantics: walking the complete backups newest to oldest, the newest backup of each
//!     distinct day (`YYYY-MM-DD`), ISO week (`YYYY-Www`), month (`YYYY-MM`) or year is kept
//!     until `n` such periods have been used. Periods without backups use up nothing.
//!
//!   A rule that is `None` or `0` is off.
//! - **Safety**: the newest complete auto or legacy backup is always kept, even when every
//!   rule would delete it (say `keep_days = 1` and the nightly timer stopped ten days ago).
//! - **Incomplete** backups never count toward any rule and are never the newest complete
//!   one: kept while less than 24 h old (one may still be being written), deleted after.
//! - **Future-dated** backups (clock skew: dated more than [`crate::format::names::FUTURE_TOLERANCE`]
//!   after now) are kept, flagged and, like manual ones, not counted, so one dated next year
//!   cannot take the `keep_last` or "newest complete" slot of the backup just made.
//! - When the triggering backup **failed**, nothing is deleted: the backups the rules would
//!   delete are kept with [`Reason::PruningSuspended`] added after their delete reason.
//!
//! Backups with the same time are ordered by name (then kind and completeness, so the result
//! never depends on input order); the first in that order counts as the newer one.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::format::names::BackupKind;

/// How long an incomplete backup may be in progress before it is taken as abandoned.
const INCOMPLETE_GRACE: TimeDelta = TimeDelta::hours(24);

/// The retention rules of the `[retention]` configuration section.
///
/// Every field is optional in the configuration; a missing one takes its value from
/// [`RetentionPolicy::default`] (`keep_days = 7`, everything else off). TOML has no null,
/// so `keep_days = 0` is how the age rule is turned off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep auto and legacy backups taken within this many days of now.
    ///
    /// `None` is written out as `0`, since a missing key would read back as the default.
    #[serde(serialize_with = "serialize_keep_days")]
    pub keep_days: Option<u32>,
    /// Keep this many of the newest complete auto and legacy backups.
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of this many most recent days that have one.
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of this many most recent ISO weeks that have one.
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of this many most recent months that have one.
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of this many most recent years that have one.
    pub keep_yearly: Option<u32>,
}

impl Default for RetentionPolicy {
    /// A week of nightly backups, as the shell scripts kept.
    fn default() -> Self {
        RetentionPolicy {
            keep_days: Some(7),
            keep_last: None,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
            keep_yearly: None,
        }
    }
}

fn serialize_keep_days<S: Serializer>(
    days: &Option<u32>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u32(days.unwrap_or(0))
}

/// One backup found in the backup root, as retention needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Directory name, used to break ties between backups with the same time.
    pub name: String,
    /// Auto, manual or legacy.
    pub kind: BackupKind,
    /// When the backup was taken (UTC).
    pub time: DateTime<Utc>,
    /// Whether the backup finished (its manifest is in place).
    pub complete: bool,
}

/// What retention decided for one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Directory name.
    pub name: String,
    /// Auto, manual or legacy.
    pub kind: BackupKind,
    /// When the backup was taken (UTC).
    pub time: DateTime<Utc>,
    /// `true` to keep the backup, `false` to delete it.
    pub keep: bool,
    /// Why, in rule order. `keep` is `true` exactly when one of these
    /// [keeps](Reason::keeps) the backup.
    pub reasons: Vec<Reason>,
}

/// Why a backup is kept or deleted.
///
/// Serialized as its [`Display`](fmt::Display) text (e.g. `"daily #3 (2026-11-20)"`), which
/// is meant for people; programs should look at [`Decision::keep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A manual backup: never pruned automatically.
    Manual,
    /// The newest complete auto or legacy backup, kept whatever the rules say.
    NewestComplete,
    /// Dated after now (clock skew): kept and not counted by the rules.
    FutureDated,
    /// Taken within `keep_days` (the value) of now.
    WithinDays(u32),
    /// Among the `keep_last` newest complete backups, at this 1-based position.
    Last(u32),
    /// The newest backup of its day, the `rank`-th such day (1-based, newest first).
    Daily {
        /// 1-based position of the day among those kept.
        rank: u32,
        /// The backup's UTC date, which names the day.
        date: NaiveDate,
    },
    /// The newest backup of its ISO week, the `rank`-th such week.
    Weekly {
        /// 1-based position of the week among those kept.
        rank: u32,
        /// The backup's UTC date, which names the ISO week.
        date: NaiveDate,
    },
    /// The newest backup of its month, the `rank`-th such month.
    Monthly {
        /// 1-based position of the month among those kept.
        rank: u32,
        /// The backup's UTC date, which names the month.
        date: NaiveDate,
    },
    /// The newest backup of its year, the `rank`-th such year.
    Yearly {
        /// 1-based position of the year among those kept.
        rank: u32,
        /// The backup's UTC date, which names the year.
        date: NaiveDate,
    },
    /// Incomplete but less than 24 h old: it may still be being written.
    IncompleteRecent,
    /// Incomplete and more than 24 h old: abandoned. Deletes the backup.
    IncompleteStale,
    /// No rule keeps it. Deletes the backup.
    Expired,
    /// The rules would delete it, but the triggering backup failed, so nothing is pruned.
    PruningSuspended,
}

impl Reason {
    /// Whether this reason keeps the backup; only [`Reason::IncompleteStale`] and
    /// [`Reason::Expired`] do not.
    pub fn keeps(self) -> bool {
        !matches!(self, Reason::IncompleteStale | Reason::Expired)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::Manual => f.write_str("manual (never pruned automatically)"),
            Reason::NewestComplete => f.write_str("newest complete backup"),
            Reason::FutureDated => f.write_str("future-dated — clock skew? (kept, not counted)"),
            Reason::WithinDays(days) => write!(f, "within keep_days={days}"),
            Reason::Last(pos) => write!(f, "keep_last #{pos}"),
            Reason::Daily { rank, date } => write!(f, "daily #{rank} ({})", date.format("%F")),
            Reason::Weekly { rank, date } => {
                let week = date.iso_week();
                write!(f, "weekly #{rank} ({:04}-W{:02})", week.year(), week.week())
            }
            Reason::Monthly { rank, date } => {
                write!(f, "monthly #{rank} ({})", date.format("%Y-%m"))
            }
            Reason::Yearly { rank, date } => write!(f, "yearly #{rank} ({:04})", date.year()),
            Reason::IncompleteRecent => {
                f.write_str("incomplete, less than 24 h old (may be in progress)")
            }
            Reason::IncompleteStale => f.write_str("incomplete and older than 24 h"),
            Reason::Expired => f.write_str("expired"),
            Reason::PruningSuspended => f.write_str("the triggering backup failed; nothing pruned"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Decides, for each candidate, whether to keep it and why.
///
/// Returns one decision per candidate, newest first (ties as described in the
/// [module documentation](self)). `now` is the time pruning runs; `last_run_succeeded` is
/// whether the backup that triggered it succeeded — when it did not, nothing is deleted.
pub fn decide(
    policy: &RetentionPolicy,
    candidates: &[Candidate],
    now: DateTime<Utc>,
    last_run_succeeded: bool,
) -> Vec<Decision> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| newest_first(a, b));

    let on = |rule: Option<u32>| rule.filter(|&n| n > 0);
    // `None` when the cutoff is before chrono's range: then every backup is within it.
    let days_rule = on(policy.keep_days)
        .map(|days| (days, now.checked_sub_signed(TimeDelta::days(days.into()))));
    let stale_before = now.checked_sub_signed(INCOMPLETE_GRACE);
    let mut last = Counter::new(policy.keep_last);
    let mut periods = [
        PeriodRule::new(Period::Day, policy.keep_daily),
        PeriodRule::new(Period::Week, policy.keep_weekly),
        PeriodRule::new(Period::Month, policy.keep_monthly),
        PeriodRule::new(Period::Year, policy.keep_yearly),
    ];
    let mut newest_seen = false;

    order
        .into_iter()
        .map(|c| {
            let mut reasons = Vec::new();
            if c.kind == BackupKind::Manual {
                reasons.push(Reason::Manual);
            } else if !c.complete {
                let stale = stale_before.is_some_and(|before| c.time < before);
                reasons.push(if stale {
                    Reason::IncompleteStale
                } else {
                    Reason::IncompleteRecent
                });
            } else if crate::format::names::is_future(c.time, now) {
                reasons.push(Reason::FutureDated);
            } else {
                if !newest_seen {
                    newest_seen = true;
                    reasons.push(Reason::NewestComplete);
                }
                if let Some((days, cutoff)) = days_rule
                    && cutoff.is_none_or(|cutoff| c.time >= cutoff)
                {
                    reasons.push(Reason::WithinDays(days));
                }
                if let Some(pos) = last.take() {
                    reasons.push(Reason::Last(pos));
                }
                // Every period rule sees every backup: one backup may fill several slots.
                reasons.extend(periods.iter_mut().filter_map(|rule| rule.offer(c.time)));
                if reasons.is_empty() {
                    reasons.push(Reason::Expired);
                }
            }
            let mut keep = reasons.iter().any(|r| r.keeps());
            if !keep && !last_run_succeeded {
                reasons.push(Reason::PruningSuspended);
                keep = true;
            }
            Decision {
                name: c.name.clone(),
                kind: c.kind,
                time: c.time,
                keep,
                reasons,
            }
        })
        .collect()
}

/// Newest first; the rest of the key only makes the order total.
fn newest_first(a: &Candidate, b: &Candidate) -> Ordering {
    b.time
        .cmp(&a.time)
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.kind.cmp(&b.kind))
        .then_with(|| a.complete.cmp(&b.complete))
}

/// Hands out 1-based positions until a rule's count is used up.
#[derive(Debug)]
struct Counter {
    used: u32,
    limit: u32,
}

impl Counter {
    fn new(rule: Option<u32>) -> Self {
        Counter {
            used: 0,
            limit: rule.unwrap_or(0),
        }
    }

    fn take(&mut self) -> Option<u32> {
        (self.used < self.limit).then(|| {
            self.used += 1;
            self.used
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Period {
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// A number identifying the period `date` falls in; equal exactly for the same period.
    fn bucket(self, date: NaiveDate) -> i64 {
        match self {
            Period::Day => date.num_days_from_ce().into(),
            // The ISO year, not the calendar one: 2027-01-01 is in 2026-W53.
            Period::Week => {
                let week = date.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Period::Month => i64::from(date.year()) * 100 + i64::from(date.month()),
            Period::Year => date.year().into(),
        }
    }

    fn reason(self, rank: u32, date: NaiveDate) -> Reason {
        match self {
            Period::Day => Reason::Daily { rank, date },
            Period::Week => Reason::Weekly { rank, date },
            Period::Month => Reason::Monthly { rank, date },
            Period::Year => Reason::Yearly { rank, date },
        }
    }
}

/// One of the `keep_daily` … `keep_yearly` rules during the newest-to-oldest walk.
#[derive(Debug)]
struct PeriodRule {
    period: Period,
    counter: Counter,
    /// The period of the last backup kept; older backups in it are not the newest of it.
    last: Option<i64>,
}

impl PeriodRule {
    fn new(period: Period, rule: Option<u32>) -> Self {
        PeriodRule {
            period,
            counter: Counter::new(rule),
            last: None,
        }
    }

    /// Offers the next older backup; returns the reason when this rule keeps it.
    fn offer(&mut self, time: DateTime<Utc>) -> Option<Reason> {
        let date = time.date_naive();
        let bucket = self.period.bucket(date);
        if self.last == Some(bucket) {
            return None;
        }
        let rank = self.counter.take()?;
        self.last = Some(bucket);
        Some(self.period.reason(rank, date))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::names::format_name;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn cand(kind: BackupKind, time: DateTime<Utc>, complete: bool) -> Candidate {
        Candidate {
            name: format_name(kind, time),
            kind,
            time,
            complete,
        }
    }

    fn auto(time: DateTime<Utc>) -> Candidate {
        cand(BackupKind::Auto, time, true)
    }

    /// Auto backups at 03:00 every day from `first` to `last` inclusive, except the days in `skip`.
    fn nightly(
        first: NaiveDate,
        last: NaiveDate,
        skip: &[(NaiveDate, NaiveDate)],
    ) -> Vec<Candidate> {
        first
            .iter_days()
            .take_while(|d| *d <= last)
            .filter(|d| !skip.iter().any(|(from, to)| from <= d && d <= to))
            .map(|d| auto(d.and_hms_opt(3, 0, 0).unwrap().and_utc()))
            .collect()
    }

    fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap()
    }

    fn days_only(keep_days: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_days: Some(keep_days),
            ..RetentionPolicy::default()
        }
    }

    fn gfs(daily: u32, weekly: u32, monthly: u32, yearly: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_days: None,
            keep_last: None,
            keep_daily: Some(daily),
            keep_weekly: Some(weekly),
            keep_monthly: Some(monthly),
            keep_yearly: Some(yearly),
        }
    }

    fn kept(decisions: &[Decision]) -> Vec<&str> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.name.as_str())
            .collect()
    }

    fn texts(decision: &Decision) -> Vec<String> {
        decision.reasons.iter().map(ToString::to_string).collect()
    }

    /// Checks the invariants every result has, whatever the input.
    fn check_shape(candidates: &[Candidate], decisions: &[Decision]) {
        assert_eq!(candidates.len(), decisions.len());
        for pair in decisions.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!((b.time, &a.name) <= (a.time, &b.name), "order: {a:?} {b:?}");
        }
        for d in decisions {
            assert!(!d.reasons.is_empty(), "{d:?}");
            assert_eq!(d.keep, d.reasons.iter().any(|r| r.keeps()), "{d:?}");
        }
    }

    #[test]
    fn keep_days_over_a_year_table() {
        let year = nightly(date(2026, 1, 1), date(2026, 12, 31), &[]);
        // (now, first kept day of December; last is always the 31st)
        let cases = [
            (t(2026, 12, 31, 12, 0, 0), 25),
            (t(2026, 12, 31, 3, 0, 0), 24), // cutoff exactly on a backup: inclusive
            (t(2026, 12, 31, 3, 0, 1), 25),
            (t(2026, 12, 31, 23, 59, 59), 25),
            (t(2027, 1, 1, 0, 0, 1), 25),
            (t(2027, 1, 1, 3, 0, 1), 26),
        ];
        for (now, first) in cases {
            let decisions = decide(&days_only(7), &year, now, true);
            check_shape(&year, &decisions);
            let want: Vec<String> = (first..=31)
                .rev()
                .map(|d| format_name(BackupKind::Auto, t(2026, 12, d, 3, 0, 0)))
                .collect();
            assert_eq!(kept(&decisions), want, "now={now}");
            for d in decisions.iter().filter(|d| d.keep) {
                assert!(d.reasons.contains(&Reason::WithinDays(7)), "{d:?}");
            }
            assert!(
                decisions
                    .iter()
                    .filter(|d| !d.keep)
                    .all(|d| d.reasons == [Reason::Expired])
            );
        }
    }

    #[test]
    fn gfs_over_a_year() {
        let year = nightly(date(2026, 1, 1), date(2026, 12, 31), &[]);
        let decisions = decide(&gfs(7, 4, 12, 2), &year, t(2026, 12, 31, 12, 0, 0), true);
        check_shape(&year, &decisions);
        // 7 dailies; weeks 2026-W53 (Dec 31), W52 (Dec 27, already a daily), W51, W50;
        // the last day of each month; only one year exists.
        let mut want: Vec<NaiveDate> = (25..=31).rev().map(|d| date(2026, 12, d)).collect();
        want.extend([date(2026, 12, 20), date(2026, 12, 13)]);
        want.extend(
            (1..=11)
                .rev()
                .map(|m| date(2026, m + 1, 1).pred_opt().unwrap()),
        );
        let want: Vec<String> = want
            .into_iter()
            .map(|d| format_name(BackupKind::Auto, d.and_hms_opt(3, 0, 0).unwrap().and_utc()))
            .collect();
        assert_eq!(kept(&decisions), want);
        assert_eq!(
            texts(&decisions[0]),
            [
                "newest complete backup",
                "daily #1 (2026-12-31)",
                "weekly #1 (2026-W53)",
                "monthly #1 (2026-12)",
                "yearly #1 (2026)",
            ]
        );
    }

    #[test]
    fn gfs_small_calendar_hand_derived() {
        // 2025-11-20 .. 2026-01-07 nightly, with no backups in 2025-W51 (Dec 15–21).
        let backups = nightly(
            date(2025, 11, 20),
            date(2026, 1, 7),
            &[(date(2025, 12, 15), date(2025, 12, 21))],
        );
        assert_eq!(backups.len(), 42);
        let decisions = decide(&gfs(7, 4, 12, 2), &backups, t(2026, 1, 7, 12, 0, 0), true);
        check_shape(&backups, &decisions);
        let want: &[(NaiveDate, &[&str])] = &[
            (
                date(2026, 1, 7),
                &[
                    "newest complete backup",
                    "daily #1 (2026-01-07)",
                    "weekly #1 (2026-W02)",
                    "monthly #1 (2026-01)",
                    "yearly #1 (2026)",
                ],
            ),
            (date(2026, 1, 6), &["daily #2 (2026-01-06)"]),
            (date(2026, 1, 5), &["daily #3 (2026-01-05)"]),
            (
                date(2026, 1, 4),
                &["daily #4 (2026-01-04)", "weekly #2 (2026-W01)"],
            ),
            (date(2026, 1, 3), &["daily #5 (2026-01-03)"]),
            (date(2026, 1, 2), &["daily #6 (2026-01-02)"]),
            (date(2026, 1, 1), &["daily #7 (2026-01-01)"]),
            // Dec 29–31 are in 2026-W01, already used by Jan 4.
            (
                date(2025, 12, 31),
                &["monthly #2 (2025-12)", "yearly #2 (2025)"],
            ),
            (date(2025, 12, 28), &["weekly #3 (2025-W52)"]),
            // 2025-W51 has no backups and uses up nothing.
            (date(2025, 12, 14), &["weekly #4 (2025-W50)"]),
            (date(2025, 11, 30), &["monthly #3 (2025-11)"]),
        ];
        let got: Vec<(NaiveDate, Vec<String>)> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| (d.time.date_naive(), texts(d)))
            .collect();
        let want: Vec<(NaiveDate, Vec<String>)> = want
            .iter()
            .map(|(d, r)| (*d, r.iter().map(ToString::to_string).collect()))
            .collect();
        assert_eq!(got, want);
        assert!(
            decisions
                .iter()
                .filter(|d| !d.keep)
                .all(|d| d.reasons == [Reason::Expired])
        );
    }

    #[test]
    fn weeks_are_iso_weeks_across_new_year() {
        // 2027-01-01 and 2026-12-28 are both in 2026-W53; 2026-12-27 is in 2026-W52.
        let backups = [
            auto(t(2027, 1, 1, 3, 0, 0)),
            auto(t(2026, 12, 28, 3, 0, 0)),
            auto(t(2026, 12, 27, 3, 0, 0)),
        ];
        let policy = RetentionPolicy {
            keep_days: Some(0),
            keep_weekly: Some(2),
            ..RetentionPolicy::default()
        };
        let decisions = decide(&policy, &backups, t(2027, 1, 2, 0, 0, 0), true);
        let got: Vec<(bool, Vec<String>)> = decisions.iter().map(|d| (d.keep, texts(d))).collect();
        assert_eq!(
            got,
            [
                (
                    true,
                    vec![
                        "newest complete backup".into(),
                        "weekly #1 (2026-W53)".into()
                    ]
                ),
                (false, vec!["expired".into()]),
                (true, vec!["weekly #2 (2026-W52)".into()]),
            ]
        );
    }

    #[test]
    fn only_the_newest_of_a_day_counts_for_daily() {
        let backups: Vec<Candidate> = [18, 19, 20]
            .into_iter()
            .flat_map(|d| [1, 3, 15].map(|h| auto(t(2026, 11, d, h, 0, 0))))
            .collect();
        let policy = RetentionPolicy {
            keep_days: None,
            keep_daily: Some(2),
            ..RetentionPolicy::default()
        };
        let decisions = decide(&policy, &backups, t(2026, 11, 20, 23, 59, 59), true);
        check_shape(&backups, &decisions);
        assert_eq!(
            kept(&decisions),
            ["auto-20261120T150000Z", "auto-20261119T150000Z"]
        );
        assert_eq!(texts(&decisions[3]), ["daily #2 (2026-11-19)"]);
    }

    #[test]
    fn manual_backups_are_kept_and_not_counted() {
        let backups = [
            cand(BackupKind::Manual, t(2026, 11, 20, 10, 0, 0), true),
            auto(t(2026, 11, 20, 3, 0, 0)),
            auto(t(2026, 11, 19, 3, 0, 0)),
            cand(BackupKind::Manual, t(2026, 11, 18, 10, 0, 0), true),
            auto(t(2026, 11, 18, 3, 0, 0)),
            cand(BackupKind::Manual, t(2020, 1, 1, 0, 0, 0), false),
        ];
        let policy = RetentionPolicy {
            keep_days: Some(0),
            keep_last: Some(1),
            keep_daily: Some(2),
            ..RetentionPolicy::default()
        };
        let decisions = decide(&policy, &backups, t(2026, 11, 21, 0, 0, 1), true);
        check_shape(&backups, &decisions);
        let got: Vec<(&str, bool, Vec<String>)> = decisions
            .iter()
            .map(|d| (d.name.as_str(), d.keep, texts(d)))
            .collect();
        let manual = || vec!["manual (never pruned automatically)".to_string()];
        assert_eq!(
            got,
            [
                ("manual-20261120T100000Z", true, manual()),
                (
                    "auto-20261120T030000Z",
                    true,
                    vec![
                        "newest complete backup".into(),
                        "keep_last #1".into(),
                        "daily #1 (2026-11-20)".into(),
                    ]
                ),
                (
                    "auto-20261119T030000Z",
                    true,
                    vec!["daily #2 (2026-11-19)".into()]
                ),
                ("manual-20261118T100000Z", true, manual()),
                ("auto-20261118T030000Z", false, vec!["expired".into()]),
                // Even an incomplete manual backup is left for a person to remove.
                ("manual-20200101T000000Z", true, manual()),
            ]
        );
    }

    #[test]
    fn legacy_backups_count_like_auto() {
        let backups = [
            auto(t(2026, 11, 20, 3, 0, 0)),
            cand(BackupKind::Legacy, t(2026, 11, 19, 3, 0, 0), true),
            auto(t(2026, 11, 18, 3, 0, 0)),
            cand(BackupKind::Legacy, t(2026, 11, 17, 3, 0, 0), true),
        ];
        let policy = RetentionPolicy {
            keep_days: None,
            keep_last: Some(3),
            ..RetentionPolicy::default()
        };
        let decisions = decide(&policy, &backups, t(2026, 11, 20, 12, 0, 0), true);
        check_shape(&backups, &decisions);
        assert_eq!(
            kept(&decisions),
            [
                "auto-20261120T030000Z",
                "2026-11-19-030000",
                "auto-20261118T030000Z"
            ]
        );
        assert_eq!(decisions[1].reasons, [Reason::Last(2)]);
        assert_eq!(decisions[3].reasons, [Reason::Expired]);

        // The newest complete one may be legacy too.
        let decisions = decide(&days_only(1), &backups[1..2], t(2026, 12, 1, 0, 0, 0), true);
        assert_eq!(decisions[0].reasons, [Reason::NewestComplete]);
    }

    #[test]
    fn newest_is_kept_when_everything_expired() {
        let backups = nightly(date(2026, 11, 1), date(2026, 11, 10), &[]);
        let decisions = decide(&days_only(1), &backups, t(2026, 11, 20, 3, 0, 0), true);
        check_shape(&backups, &decisions);
        assert_eq!(kept(&decisions), ["auto-20261110T030000Z"]);
        assert_eq!(decisions[0].reasons, [Reason::NewestComplete]);
        assert!(
            decisions[1..]
                .iter()
                .all(|d| d.reasons == [Reason::Expired])
        );
    }

    #[test]
    fn failed_run_deletes_nothing() {
        let mut backups = nightly(date(2026, 11, 1), date(2026, 11, 10), &[]);
        backups.push(cand(BackupKind::Auto, t(2026, 10, 1, 0, 0, 0), false));
        let decisions = decide(&days_only(1), &backups, t(2026, 11, 20, 3, 0, 0), false);
        check_shape(&backups, &decisions);
        assert!(decisions.iter().all(|d| d.keep));
        assert_eq!(decisions[0].reasons, [Reason::NewestComplete]);
        assert_eq!(
            decisions[1].reasons,
            [Reason::Expired, Reason::PruningSuspended]
        );
        assert_eq!(
            decisions[10].reasons,
            [Reason::IncompleteStale, Reason::PruningSuspended]
        );
        assert_eq!(
            texts(&decisions[1]),
            ["expired", "the triggering backup failed; nothing pruned"]
        );
    }

    #[test]
    fn incomplete_backups_table() {
        let now = t(2026, 11, 20, 12, 0, 0);
        let incomplete = |time| cand(BackupKind::Auto, time, false);
        // (age of the incomplete backup, expected reason)
        let cases = [
            (TimeDelta::seconds(-60), Reason::IncompleteRecent),
            (TimeDelta::zero(), Reason::IncompleteRecent),
            (TimeDelta::hours(23), Reason::IncompleteRecent),
            (TimeDelta::hours(24), Reason::IncompleteRecent),
            (
                TimeDelta::hours(24) + TimeDelta::seconds(1),
                Reason::IncompleteStale,
            ),
            (TimeDelta::days(3), Reason::IncompleteStale),
        ];
        let older = auto(t(2026, 11, 10, 3, 0, 0));
        for (age, want) in cases {
            let backups = [incomplete(now - age), older.clone()];
            let policy = RetentionPolicy {
                keep_days: Some(0),
                keep_last: Some(1),
                ..RetentionPolicy::default()
            };
            let decisions = decide(&policy, &backups, now, true);
            check_shape(&backups, &decisions);
            assert_eq!(decisions[0].reasons, [want], "age={age}");
            assert_eq!(decisions[0].keep, want == Reason::IncompleteRecent);
            // The incomplete one neither is the newest complete nor uses the keep_last slot.
            assert_eq!(
                decisions[1].reasons,
                [Reason::NewestComplete, Reason::Last(1)]
            );
        }
    }

    #[test]
    fn future_dated_backups_are_kept_and_not_counted() {
        let now = t(2026, 11, 20, 12, 0, 0);
        let backups = [
            auto(t(2027, 1, 1, 3, 0, 0)),
            auto(now),
            auto(t(2026, 11, 19, 3, 0, 0)),
        ];
        let policy = RetentionPolicy {
            keep_days: None,
            keep_last: Some(1),
            ..RetentionPolicy::default()
        };
        let decisions = decide(&policy, &backups, now, true);
        check_shape(&backups, &decisions);
        let got: Vec<&[Reason]> = decisions.iter().map(|d| d.reasons.as_slice()).collect();
        assert_eq!(
            got,
            [
                &[Reason::FutureDated][..],
                &[Reason::NewestComplete, Reason::Last(1)],
                &[Reason::Expired],
            ]
        );
    }

    #[test]
    fn ties_are_broken_by_name_whatever_the_input_order() {
        let time = t(2026, 11, 20, 3, 0, 0);
        let mut backups = vec![
            cand(BackupKind::Legacy, time, true),
            cand(BackupKind::Auto, time, true),
        ];
        let policy = RetentionPolicy {
            keep_days: None,
            keep_daily: Some(1),
            ..RetentionPolicy::default()
        };
        let first = decide(&policy, &backups, time, true);
        backups.reverse();
        assert_eq!(decide(&policy, &backups, time, true), first);
        // "2026-…" sorts before "auto-…", so the legacy one is taken as the newer.
        assert_eq!(kept(&first), ["2026-11-20-030000"]);
    }

    /// A year as a migrated host sees it: shell-script (legacy) backups at 02:30 until the
    /// switch to coffer, then auto backups at 03:00 with two outages, and manual backups on
    /// the first of each month.
    fn migrated_year() -> Vec<Candidate> {
        let mut v: Vec<Candidate> = date(2025, 6, 1)
            .iter_days()
            .take_while(|d| *d <= date(2025, 9, 30))
            .filter(|d| !(date(2025, 8, 10)..=date(2025, 8, 13)).contains(d))
            .map(|d| {
                cand(
                    BackupKind::Legacy,
                    d.and_hms_opt(2, 30, 0).unwrap().and_utc(),
                    true,
                )
            })
            .collect();
        v.extend(nightly(
            date(2025, 10, 1),
            date(2026, 5, 31),
            &[
                (date(2025, 12, 20), date(2026, 1, 5)),
                (date(2026, 3, 10), date(2026, 3, 12)),
            ],
        ));
        for m in 0..12 {
            let (y, mo) = if m < 7 { (2025, m + 6) } else { (2026, m - 6) };
            v.push(cand(BackupKind::Manual, t(y, mo, 1, 10, 15, 0), true));
        }
        // A backup killed mid-way in the second outage, and one being written right now.
        v.push(cand(BackupKind::Auto, t(2026, 3, 11, 3, 0, 0), false));
        v.push(cand(BackupKind::Auto, t(2026, 5, 31, 23, 0, 0), false));
        v
    }

    /// An independent formulation of the rules: for each rule, group the counted backups by
    /// a period label, take the `n` most recent labels and keep the newest backup of each.
    fn oracle(policy: &RetentionPolicy, backups: &[Candidate], now: DateTime<Utc>) -> Vec<String> {
        let mut counted: Vec<&Candidate> = backups
            .iter()
            .filter(|c| c.kind != BackupKind::Manual && c.complete && c.time <= now)
            .collect();
        counted.sort_by(|a, b| b.time.cmp(&a.time).then(a.name.cmp(&b.name)));
        let mut keep: std::collections::BTreeSet<String> = backups
            .iter()
            .filter(|c| {
                c.kind == BackupKind::Manual
                    || c.time > now
                    || (!c.complete && now - c.time <= TimeDelta::hours(24))
            })
            .map(|c| c.name.clone())
            .collect();
        keep.extend(counted.first().map(|c| c.name.clone()));
        if let Some(days) = policy.keep_days.filter(|&d| d > 0) {
            let cutoff = now - TimeDelta::days(days.into());
            keep.extend(
                counted
                    .iter()
                    .filter(|c| c.time >= cutoff)
                    .map(|c| c.name.clone()),
            );
        }
        let n = |rule: Option<u32>| rule.unwrap_or(0) as usize;
        keep.extend(
            counted
                .iter()
                .take(n(policy.keep_last))
                .map(|c| c.name.clone()),
        );
        let rules = [
            (policy.keep_daily, "%F"),
            (policy.keep_weekly, "%G-W%V"),
            (policy.keep_monthly, "%Y-%m"),
            (policy.keep_yearly, "%Y"),
        ];
        for (rule, label) in rules {
            let mut seen = Vec::new();
            for c in &counted {
                let period = c.time.format(label).to_string();
                if !seen.contains(&period) {
                    seen.push(period);
                    if seen.len() <= n(rule) {
                        keep.insert(c.name.clone());
                    }
                }
            }
        }
        keep.into_iter().collect()
    }

    #[test]
    fn migrated_year_with_gaps_legacy_and_manual_matches_the_oracle() {
        let backups = migrated_year();
        assert_eq!(backups.len(), 118 + 223 + 12 + 2);
        let clocks = [
            t(2026, 5, 31, 23, 59, 59),
            t(2026, 6, 1, 0, 0, 0),
            t(2026, 6, 1, 2, 59, 59),
            t(2026, 6, 3, 17, 42, 13),
            // The clock set back into the second outage: later backups are future-dated.
            t(2026, 3, 11, 4, 7, 31),
            // Long after the timer stopped: only the safety rule keeps an auto backup.
            t(2027, 2, 28, 12, 0, 0),
        ];
        let policies = [
            RetentionPolicy::default(),
            gfs(7, 4, 6, 2),
            gfs(14, 0, 12, 0),
            RetentionPolicy {
                keep_days: Some(30),
                keep_last: Some(10),
                keep_weekly: Some(8),
                ..RetentionPolicy::default()
            },
            RetentionPolicy {
                keep_days: Some(0),
                ..RetentionPolicy::default()
            },
        ];
        for now in clocks {
            for policy in &policies {
                let decisions = decide(policy, &backups, now, true);
                check_shape(&backups, &decisions);
                let mut got: Vec<String> = kept(&decisions).iter().map(|s| s.to_string()).collect();
                got.sort();
                assert_eq!(
                    got,
                    oracle(policy, &backups, now),
                    "now={now} policy={policy:?}"
                );
                // Every manual backup survives; nothing is deleted when the run failed.
                assert!(
                    decisions
                        .iter()
                        .filter(|d| d.kind == BackupKind::Manual)
                        .all(|d| d.keep)
                );
                assert!(decide(policy, &backups, now, false).iter().all(|d| d.keep));
            }
        }
    }

    #[test]
    fn migrated_year_hand_checked() {
        let backups = migrated_year();
        let now = t(2026, 6, 1, 0, 0, 0);
        let decisions = decide(&gfs(7, 4, 6, 2), &backups, now, true);
        let mut kept_auto_legacy: Vec<&str> = decisions
            .iter()
            .filter(|d| d.keep && d.kind != BackupKind::Manual)
            .map(|d| d.name.as_str())
            .collect();
        kept_auto_legacy.reverse();
        assert_eq!(
            kept_auto_legacy,
            [
                // yearly #2 and monthly #6: the newest of 2025 and of December is the
                // last one before the holiday outage.
                "auto-20251219T030000Z",
                // monthly #5..#2: the last backup of each month.
                "auto-20260131T030000Z",
                "auto-20260228T030000Z",
                "auto-20260331T030000Z",
                "auto-20260430T030000Z",
                // weekly #4..#2 (2026-W19..W21; W22 is the week of the dailies).
                "auto-20260510T030000Z",
                "auto-20260517T030000Z",
                "auto-20260524T030000Z",
                // daily #7..#1.
                "auto-20260525T030000Z",
                "auto-20260526T030000Z",
                "auto-20260527T030000Z",
                "auto-20260528T030000Z",
                "auto-20260529T030000Z",
                "auto-20260530T030000Z",
                "auto-20260531T030000Z",
                // Incomplete and an hour old: may still be being written.
                "auto-20260531T230000Z",
            ]
        );
        // No legacy backup is old enough to matter to any rule any more, and the killed
        // backup from the outage is removed.
        let stale = decisions
            .iter()
            .find(|d| d.name == "auto-20260311T030000Z")
            .unwrap();
        assert_eq!(stale.reasons, [Reason::IncompleteStale]);
        assert!(
            decisions
                .iter()
                .filter(|d| d.kind == BackupKind::Legacy)
                .all(|d| !d.keep)
        );
    }

    #[test]
    fn reason_texts() {
        let d = date(2026, 11, 20);
        let cases = [
            (Reason::Manual, "manual (never pruned automatically)"),
            (Reason::NewestComplete, "newest complete backup"),
            (
                Reason::FutureDated,
                "future-dated — clock skew? (kept, not counted)",
            ),
            (Reason::WithinDays(7), "within keep_days=7"),
            (Reason::Last(2), "keep_last #2"),
            (Reason::Daily { rank: 3, date: d }, "daily #3 (2026-11-20)"),
            (Reason::Weekly { rank: 1, date: d }, "weekly #1 (2026-W47)"),
            (
                Reason::Monthly { rank: 12, date: d },
                "monthly #12 (2026-11)",
            ),
            (Reason::Yearly { rank: 2, date: d }, "yearly #2 (2026)"),
            (
                Reason::IncompleteRecent,
                "incomplete, less than 24 h old (may be in progress)",
            ),
            (Reason::IncompleteStale, "incomplete and older than 24 h"),
            (Reason::Expired, "expired"),
            (
                Reason::PruningSuspended,
                "the triggering backup failed; nothing pruned",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
            assert_eq!(serde_json::to_value(reason).unwrap(), text);
        }
    }

    #[test]
    fn decision_serializes() {
        let decisions = decide(
            &RetentionPolicy::default(),
            &[auto(t(2026, 11, 20, 3, 0, 0))],
            t(2026, 11, 20, 12, 0, 0),
            true,
        );
        assert_eq!(
            serde_json::to_value(&decisions[0]).unwrap(),
            serde_json::json!({
                "name": "auto-20261120T030000Z",
                "kind": "auto",
                "time": "2026-11-20T03:00:00Z",
                "keep": true,
                "reasons": ["newest complete backup", "within keep_days=7"],
            })
        );
    }

    #[test]
    fn policy_from_toml() {
        let parse = |s: &str| toml::from_str::<RetentionPolicy>(s);
        assert_eq!(parse("").unwrap(), RetentionPolicy::default());
        assert_eq!(RetentionPolicy::default().keep_days, Some(7));
        assert_eq!(
            parse("keep_days = 0\nkeep_daily = 7\nkeep_yearly = 2").unwrap(),
            RetentionPolicy {
                keep_days: Some(0),
                keep_daily: Some(7),
                keep_yearly: Some(2),
                ..RetentionPolicy::default()
            }
        );
        assert!(parse("keep_hourly = 24").is_err());
        assert!(parse("keep_days = -1").is_err());
        // `keep_days = None` must not read back as the default 7.
        let text = toml::to_string(&gfs(7, 4, 12, 2)).unwrap();
        assert_eq!(
            parse(&text).unwrap(),
            RetentionPolicy {
                keep_days: Some(0),
                ..gfs(7, 4, 12, 2)
            }
        );
        let default = RetentionPolicy::default();
        assert_eq!(parse(&toml::to_string(&default).unwrap()).unwrap(), default);
    }

    // ---- properties ----

    /// Start of the generated time range: 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600;
    /// Length of the generated time range: about 400 days.
    const SPAN: i64 = 400 * 86_400;

    fn candidate() -> impl Strategy<Value = Candidate> {
        (
            // Some backups crowded into three days, on the hour, to get ties and shared days.
            prop_oneof![0..SPAN, (0i64..72).prop_map(|h| h * 3600)],
            prop_oneof![3 => Just(BackupKind::Auto), 1 => Just(BackupKind::Manual), 1 => Just(BackupKind::Legacy)],
            prop::bool::weighted(0.85),
        )
            .prop_map(|(offset, kind, complete)| {
                let time = DateTime::from_timestamp(T0 + offset, 0).unwrap();
                cand(kind, time, complete)
            })
    }

    fn rule() -> impl Strategy<Value = Option<u32>> {
        prop::option::of(0u32..12)
    }

    fn any_policy() -> impl Strategy<Value = RetentionPolicy> {
        (rule(), rule(), rule(), rule(), rule(), rule()).prop_map(
            |(keep_days, keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly)| {
                RetentionPolicy {
                    keep_days,
                    keep_last,
                    keep_daily,
                    keep_weekly,
                    keep_monthly,
                    keep_yearly,
                }
            },
        )
    }

    /// Mostly after every backup, sometimes among them (so some are future-dated).
    fn any_now() -> impl Strategy<Value = DateTime<Utc>> {
        (0..SPAN + 30 * 86_400).prop_map(|offset| DateTime::from_timestamp(T0 + offset, 0).unwrap())
    }

    fn kept_set(decisions: &[Decision]) -> Vec<(DateTime<Utc>, String)> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| (d.time, d.name.clone()))
            .collect()
    }

    proptest! {
        #[test]
        fn invariants(
            policy in any_policy(),
            candidates in prop::collection::vec(candidate(), 0..60),
            now in any_now(),
            ok in any::<bool>(),
        ) {
            let decisions = decide(&policy, &candidates, now, ok);
            check_shape(&candidates, &decisions);

            let newest = candidates
                .iter()
                .filter(|c| c.kind != BackupKind::Manual && c.complete)
                .min_by(|a, b| newest_first(a, b));
            if let Some(newest) = newest {
                // Kept as the newest complete, or as future-dated when the clock is behind it.
                let kept = decisions.iter().any(|d| {
                    d.name == newest.name
                        && d.keep
                        && (d.reasons.contains(&Reason::NewestComplete)
                            || d.reasons == [Reason::FutureDated])
                });
                prop_assert!(kept, "newest complete {:?} not kept", newest);
            }
            for d in &decisions {
                if d.kind == BackupKind::Manual {
                    prop_assert!(d.keep);
                    prop_assert_eq!(&d.reasons, &[Reason::Manual]);
                }
                if !ok {
                    prop_assert!(d.keep);
                }
                // A future-dated backup is always kept and flagged, never "newest complete"
                // and never a rule's slot.
                if d.kind != BackupKind::Manual
                    && candidates.iter().filter(|c| c.name == d.name).all(|c| c.complete)
                    && crate::format::names::is_future(d.time, now)
                {
                    prop_assert!(d.keep);
                    prop_assert_eq!(&d.reasons, &[Reason::FutureDated]);
                }
                if !d.keep {
                    prop_assert!(
                        d.reasons == [Reason::Expired] || d.reasons == [Reason::IncompleteStale],
                        "{:?}", d
                    );
                }
            }
        }

        #[test]
        fn independent_of_input_order(
            policy in any_policy(),
            (candidates, shuffled) in prop::collection::vec(candidate(), 0..40)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
            now in any_now(),
            ok in any::<bool>(),
        ) {
            prop_assert_eq!(
                decide(&policy, &candidates, now, ok),
                decide(&policy, &shuffled, now, ok)
            );
        }

        #[test]
        fn larger_counts_never_delete_more(
            policy in any_policy(),
            candidates in prop::collection::vec(candidate(), 0..60),
            now in any_now(),
            field in 0usize..6,
            more in 1u32..10,
        ) {
            let mut bigger = policy.clone();
            let slot = match field {
                0 => &mut bigger.keep_days,
                1 => &mut bigger.keep_last,
                2 => &mut bigger.keep_daily,
                3 => &mut bigger.keep_weekly,
                4 => &mut bigger.keep_monthly,
                _ => &mut bigger.keep_yearly,
            };
            *slot = Some(slot.unwrap_or(0) + more);
            let before = kept_set(&decide(&policy, &candidates, now, true));
            let after = kept_set(&decide(&bigger, &candidates, now, true));
            for k in &before {
                prop_assert!(after.contains(k), "{:?} no longer kept with {:?}", k, bigger);
            }
        }
    }
}
