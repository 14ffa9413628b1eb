//! The docs name only flags that exist: every `gitprio ...` command line of the user guides,
//! in code blocks and inline code, is checked against that command's own `--help`. And a
//! rule stated in one guide is not restated, differently, in another.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::TestEnv;

/// The guides a new user follows, as the README links them, and the example queue.
const GUIDES: [&str; 12] = [
    "README.md",
    "docs/cli.md",
    "docs/usage.md",
    "docs/run.md",
    "docs/leases.md",
    "docs/github-action.md",
    "docs/how-it-works.md",
    "docs/context.md",
    "docs/cockpit.md",
    "docs/mcp.md",
    "docs/task-format.md",
    "tasks.example/CONVENTIONS.md",
];

/// The `--help` of each subcommand path, asked once.
struct Helps<'env> {
    env: &'env TestEnv,
    texts: BTreeMap<Vec<String>, String>,
}

impl Helps<'_> {
    fn text(&mut self, path: &[String]) -> &str {
        let env = self.env;
        self.texts.entry(path.to_vec()).or_insert_with(|| {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push("--help");
            let output = env.run(".", &args);
            assert_eq!(output.code, 0, "gitprio {}: {output}", args.join(" "));
            output.stdout
        })
    }

    /// The subcommands `gitprio <path>` lists under "Commands:".
    fn subcommands(&mut self, path: &[String]) -> BTreeSet<String> {
        self.text(path)
            .lines()
            .skip_while(|line| *line != "Commands:")
            .skip(1)
            .take_while(|line| !line.is_empty())
            .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
            .filter_map(|line| line.split_whitespace().next())
            // `gitprio help <command>` prints another command's help, which names the flags.
            .filter(|name| *name != "help")
            .map(str::to_owned)
            .collect()
    }

    /// The flags of `command` (its words after `gitprio`) that its `--help` does not list.
    fn unknown_flags(&mut self, command: &str) -> Vec<String> {
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        let mut path: Vec<String> = Vec::new();
        let mut rest = words.as_slice();
        loop {
            match rest {
                ["-C", _, tail @ ..] => rest = tail,
                [word, tail @ ..] if self.subcommands(&path).contains(*word) => {
                    path.push((*word).to_owned());
                    rest = tail;
                }
                _ => break,
            }
        }
        if path.is_empty() {
            return Vec::new();
        }
        let help = self.text(&path).to_owned();
        rest.iter()
            .map(|word| word.trim_start_matches(['[', '(']))
            .take_while(|word| *word != "--")
            .filter(|word| word.starts_with("--"))
            .map(|word| {
                let end = word[2..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .map_or(word.len(), |at| at + 2);
                word[..end].to_owned()
            })
            .filter(|flag| {
                !help.match_indices(flag.as_str()).any(|(at, _)| {
                    !help[at + flag.len()..]
                        .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
                })
            })
            .collect()
    }
}

/// Each `gitprio ...` command of `text` (inline code, and the lines of code blocks, split
/// at `|`, `;` and `&&`), with its line number.
fn commands(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_block = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let mut pieces: Vec<String> = Vec::new();
        if in_block {
            let code = line.split(" #").next().unwrap_or_default();
            pieces.extend(
                code.split(['|', ';'])
                    .flat_map(|part| part.split("&&"))
                    .map(str::to_owned),
            );
        } else {
            pieces.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
        found.extend(
            pieces
                .into_iter()
                .map(|piece| piece.trim().trim_start_matches("$ ").to_owned())
                .filter(|piece| piece.starts_with("gitprio "))
                .map(|piece| (index + 1, piece)),
        );
    }
    found
}

#[test]
fn every_flag_the_docs_give_a_command_is_one_its_help_lists() {
    let env = TestEnv::new();
    let mut helps = Helps {
        env: &env,
        texts: BTreeMap::new(),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut unknown = Vec::new();
    let mut checked = 0;
    for guide in GUIDES {
        let text = std::fs::read_to_string(root.join(guide)).unwrap();
        for (line, command) in commands(&text) {
            checked += 1;
            for flag in helps.unknown_flags(&command) {
                unknown.push(format!("{guide}:{line}: `{command}`: no {flag}"));
            }
        }
    }
    assert!(checked > 100, "only {checked} commands found in the docs");
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
}

/// The steps of the numbered list in `section`, each with its continuation lines.
fn numbered_steps(section: &str) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    for line in section.lines() {
        let starts_step = line
            .split_once(". ")
            .is_some_and(|(number, _)| number.parse::<u32>().is_ok());
        if starts_step {
            steps.push(line.to_owned());
        } else if let Some(step) = steps.last_mut().filter(|_| line.starts_with("   ")) {
            step.push(' ');
            step.push_str(line.trim());
        }
    }
    steps
}

/// docs/task-format.md states where the queue is read from, in the order
/// `source::resolve_queue_ref` tries the refs; the other guides link there.
#[test]
fn one_guide_states_where_the_queue_is_read_from_and_the_others_link_to_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let text = read("docs/task-format.md");
    let start = text.find("## Where the queue is read from").unwrap();
    let section = &text[start..];
    let section = &section[..section[1..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 1)];
    assert!(section.contains("`GITPRIO_BRANCH`") && section.contains("`branch:`"));
    let steps = numbered_steps(section);
    let refs = [
        "`refs/remotes/<remote>/<branch>`",
        "`refs/heads/<branch>`",
        "`refs/remotes/<remote>/<default>`",
        "`refs/remotes/<remote>/HEAD`",
        "the local `HEAD`",
    ];
    assert_eq!(steps.len(), refs.len(), "{steps:#?}");
    for (step, reference) in steps.iter().zip(refs) {
        assert!(
            step.contains(reference),
            "{step:?} does not name {reference}"
        );
    }
    let default = [
        "`refs/remotes/<remote>/HEAD` points to",
        "`main` or `master`",
        "the current branch",
        "`gitprio/<id>`",
        "else `main`;",
    ]
    .map(|part| {
        steps[2]
            .find(part)
            .unwrap_or_else(|| panic!("step 3 lacks {part}"))
    });
    assert!(default.is_sorted(), "step 3 is out of order: {}", steps[2]);
    let link = "task-format.md#where-the-queue-is-read-from";
    for guide in ["docs/cli.md", "docs/how-it-works.md", "docs/leases.md"] {
        let text = read(guide);
        assert!(text.contains(link), "{guide} does not link {link}");
        assert!(
            !text.contains("`main` or `master`"),
            "{guide} states the rule again instead of linking it"
        );
    }
}
