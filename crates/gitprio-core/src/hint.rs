//! What to do after a refusal, named once and worded per front end: the CLI names its
//! commands, the MCP server its tools. Errors and refusals carry a [`Hint`], never the words.

use std::error::Error;

use crate::lease::LeaseError;
use crate::task::TaskId;
use crate::workspace::WorkspaceError;

/// Who is told: the words of a hint are the commands or tools that front end offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontEnd {
    /// The `gitprio` command line (and the scripts and agents that run it).
    Cli,
    /// An agent calling `gitprio mcp`'s tools.
    Mcp,
}

/// The way out of a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Take a task first (nothing is held).
    ClaimFirst,
    /// Take a task first, or see who holds this one.
    ClaimFirstOrSeeHolders,
    /// Name the task meant, or take one first.
    NameOrClaimFirst,
    /// Take another task: this one was parked or given back.
    ClaimAnother,
    /// Finish the submission of this task; a reviewer may put it back.
    FinishSubmission(TaskId),
    /// Write the plan, then complete the task again.
    CompleteAgainWithPlan,
    /// Fix what failed and complete the task again, or give it back as failed.
    FixAcceptance,
    /// Stop, and give the task back as failed: it is over budget.
    ReleaseOverBudget(TaskId),
    /// See who holds the open tasks.
    SeeHolders,
    /// See why the open tasks are not ready.
    SeeQueue,
}

impl Hint {
    /// Says the hint to `front`, as a fragment to follow a `;`; `None` when that front end
    /// offers no way out of its own (an MCP agent told that nothing is ready just stops).
    pub fn words(&self, front: FrontEnd) -> Option<String> {
        let cli = front == FrontEnd::Cli;
        Some(match self {
            Hint::ClaimFirst if cli => "`gitprio claim` first".to_owned(),
            Hint::ClaimFirstOrSeeHolders if cli => {
                "`gitprio claim` first, or see `gitprio status`".to_owned()
            }
            Hint::ClaimFirst | Hint::ClaimFirstOrSeeHolders => {
                "call get_next_task first".to_owned()
            }
            Hint::NameOrClaimFirst if cli => "name the task, or `gitprio claim` first".to_owned(),
            Hint::NameOrClaimFirst => "pass the task_id, or call get_next_task first".to_owned(),
            Hint::ClaimAnother if cli => "`gitprio claim` takes another task".to_owned(),
            Hint::ClaimAnother => "get_next_task takes another task".to_owned(),
            Hint::FinishSubmission(id) if cli => format!(
                "`gitprio done {id}` finishes the submission, and a reviewer who rejects the change puts the task back with `gitprio revoke {id} --reason <why>`"
            ),
            Hint::FinishSubmission(id) => format!(
                "complete_task with task_id `{id}` finishes the submission; a reviewer who rejects the change puts the task back"
            ),
            Hint::CompleteAgainWithPlan if cli => "then run `gitprio done` again".to_owned(),
            Hint::CompleteAgainWithPlan => "then call complete_task again".to_owned(),
            Hint::FixAcceptance if cli => {
                "fix it and run `gitprio done` again, or `gitprio done --no-verify --reason \"<why>\"`"
                    .to_owned()
            }
            Hint::FixAcceptance => {
                "fix it and call complete_task again, or release_task with failed true".to_owned()
            }
            Hint::ReleaseOverBudget(id) if cli => {
                format!("stop, and `gitprio release {id} --failed --reason \"over budget\"`")
            }
            Hint::ReleaseOverBudget(_) => {
                "stop, and release_task with failed true and reason \"over budget\"".to_owned()
            }
            Hint::SeeHolders if cli => "see `gitprio status`".to_owned(),
            Hint::SeeQueue if cli => "see `gitprio list`".to_owned(),
            Hint::SeeHolders | Hint::SeeQueue => return None,
        })
    }

    /// Returns `text` followed by the words of `hint` for `front`, if it has any.
    pub fn follow(text: &str, hint: Option<&Hint>, front: FrontEnd) -> String {
        match hint.and_then(|hint| hint.words(front)) {
            Some(words) => format!("{text}; {words}"),
            None => text.to_owned(),
        }
    }

    /// Returns the hint of the first cause in `error`'s chain (outermost first) that has
    /// one, looking into what a [`WorkspaceError`] wraps.
    pub fn of_error(error: &(dyn Error + 'static)) -> Option<Hint> {
        WorkspaceError::first_decided(error, &Self::of_cause)
    }

    /// Returns the hint one error gives by itself, if it is a core error that gives one.
    fn of_cause(cause: &(dyn Error + 'static)) -> Option<Hint> {
        if let Some(error) = cause.downcast_ref::<LeaseError>() {
            return error.hint();
        }
        match cause.downcast_ref::<WorkspaceError>()? {
            WorkspaceError::NothingHeldHere => Some(Hint::NameOrClaimFirst),
            WorkspaceError::NoRun { .. } => Some(Hint::ClaimFirst),
            _ => None,
        }
    }
}

impl LeaseError {
    /// Returns the way out of this error, for the front end to word.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            LeaseError::NotHeld { .. } => Some(Hint::ClaimFirstOrSeeHolders),
            LeaseError::Ended { hint, .. } => Some(hint.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hint_names_commands_to_the_cli_and_never_to_an_mcp_agent() {
        let id = TaskId::new("alpha").unwrap();
        for hint in [
            Hint::ClaimFirst,
            Hint::ClaimFirstOrSeeHolders,
            Hint::NameOrClaimFirst,
            Hint::ClaimAnother,
            Hint::FinishSubmission(id.clone()),
            Hint::CompleteAgainWithPlan,
            Hint::FixAcceptance,
            Hint::ReleaseOverBudget(id),
            Hint::SeeHolders,
            Hint::SeeQueue,
        ] {
            let cli = hint.words(FrontEnd::Cli).unwrap();
            assert!(cli.contains("`gitprio "), "{hint:?}: {cli}");
            if let Some(mcp) = hint.words(FrontEnd::Mcp) {
                assert!(!mcp.contains("gitprio"), "{hint:?}: {mcp}");
            }
        }
    }
}
