//! Airflow's task-instance states (`airflow.utils.state.TaskInstanceState`), as
//! stored in `task_instance.state`.

use std::fmt;
use std::str::FromStr;

/// A task instance's state. The column is nullable: `None` is Airflow's "no status".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TiState {
    /// `removed`: the task vanished from the DAG.
    Removed,
    /// `scheduled`: the scheduler decided it should run.
    Scheduled,
    /// `queued`: handed to an executor.
    Queued,
    /// `running`.
    Running,
    /// `success`.
    Success,
    /// `restarting`: cleared while running.
    Restarting,
    /// `failed`.
    Failed,
    /// `up_for_retry`: failed, a retry is due.
    UpForRetry,
    /// `up_for_reschedule`: a sensor in reschedule mode.
    UpForReschedule,
    /// `upstream_failed`.
    UpstreamFailed,
    /// `skipped`.
    Skipped,
    /// `deferred`: waiting on a trigger.
    Deferred,
    /// `awaiting_input`: waiting on a human.
    AwaitingInput,
}

impl TiState {
    /// Every state, in Airflow's declaration order.
    pub const ALL: [TiState; 13] = [
        TiState::Removed,
        TiState::Scheduled,
        TiState::Queued,
        TiState::Running,
        TiState::Success,
        TiState::Restarting,
        TiState::Failed,
        TiState::UpForRetry,
        TiState::UpForReschedule,
        TiState::UpstreamFailed,
        TiState::Skipped,
        TiState::Deferred,
        TiState::AwaitingInput,
    ];

    /// The name Airflow stores and sends.
    pub const fn as_str(self) -> &'static str {
        match self {
            TiState::Removed => "removed",
            TiState::Scheduled => "scheduled",
            TiState::Queued => "queued",
            TiState::Running => "running",
            TiState::Success => "success",
            TiState::Restarting => "restarting",
            TiState::Failed => "failed",
            TiState::UpForRetry => "up_for_retry",
            TiState::UpForReschedule => "up_for_reschedule",
            TiState::UpstreamFailed => "upstream_failed",
            TiState::Skipped => "skipped",
            TiState::Deferred => "deferred",
            TiState::AwaitingInput => "awaiting_input",
        }
    }
}

impl serde::Serialize for TiState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for TiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name Airflow does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown task instance state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for TiState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<TiState, UnknownState> {
        TiState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in TiState::ALL {
            assert_eq!(state.as_str().parse::<TiState>(), Ok(state));
            assert_eq!(state.to_string(), state.as_str());
        }
        assert!("Running".parse::<TiState>().is_err());
        assert!("".parse::<TiState>().is_err());
    }
}
