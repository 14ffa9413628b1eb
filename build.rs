//! Embeds `tasks.example/` into the binary, for `gitprio demo`.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read at run time, not with `env!`: cargo may reuse this compiled script for a
    // checkout of the same package at another path (a git worktree sharing the
    // target directory), and a baked-in path would read the other checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let root = Path::new(&manifest_dir).join("tasks.example");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut code = String::from(
        "/// The files of `tasks.example/`: repository-relative path and content.\npub const EXAMPLE_FILES: &[(&str, &str)] = &[\n",
    );
    for relative in files {
        let full = root.join(&relative);
        println!("cargo::rerun-if-changed={}", full.display());
        writeln!(
            code,
            "    ({relative:?}, include_str!({:?})),",
            full.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("example_files.rs");
    std::fs::write(out, code).unwrap();
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            files.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}
