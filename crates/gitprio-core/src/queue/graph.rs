//! Dependency-graph analysis: strongly connected components, without recursion.

use std::collections::{HashMap, HashSet, VecDeque};

use rustc_hash::FxHashMap;

use super::Rankable;
use crate::task::TaskId;

/// Returns, for every task in a dependency cycle, one cycle through it (`[t, .., t]`).
///
/// Uses an iterative Tarjan walk so that long dependency chains cannot overflow the stack.
pub fn dependency_cycles<T: Rankable>(tasks: &[T]) -> HashMap<TaskId, Vec<TaskId>> {
    let index_of: FxHashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| (task.id(), index))
        .collect();
    cycles(tasks, &index_of)
}

/// Does the work of [`dependency_cycles`], given where each id sits in `tasks`.
pub(super) fn cycles<T: Rankable>(
    tasks: &[T],
    index_of: &FxHashMap<&str, usize>,
) -> HashMap<TaskId, Vec<TaskId>> {
    let mut edges = Edges {
        starts: Vec::with_capacity(tasks.len() + 1),
        targets: Vec::new(),
    };
    for task in tasks {
        edges.starts.push(edges.targets.len());
        edges.targets.extend(
            task.depends_on()
                .filter_map(|dependency| index_of.get(dependency).copied()),
        );
    }
    edges.starts.push(edges.targets.len());
    let mut cycles = HashMap::new();
    for component in cyclic_components(&edges) {
        let members: HashSet<usize> = component.iter().copied().collect();
        for &start in &component {
            let path = cycle_through(start, &members, &edges);
            cycles.insert(
                TaskId::from_valid(tasks[start].id()),
                path.into_iter()
                    .map(|index| TaskId::from_valid(tasks[index].id()))
                    .collect(),
            );
        }
    }
    cycles
}

/// The dependency edges of every task, as indices, in one allocation.
struct Edges {
    /// Where the edges of each task start in `targets`, and then their end.
    starts: Vec<usize>,
    targets: Vec<usize>,
}

impl Edges {
    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    fn of(&self, node: usize) -> &[usize] {
        &self.targets[self.starts[node]..self.starts[node + 1]]
    }
}

/// Returns the strongly connected components that hold a cycle: several tasks, or one that depends on itself.
fn cyclic_components(edges: &Edges) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let count = edges.len();
    let mut index = vec![UNVISITED; count];
    let mut low = vec![0; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut next_index = 0;
    for root in 0..count {
        if index[root] != UNVISITED {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut edge)) = work.last_mut() {
            if let Some(&target) = edges.of(node).get(*edge) {
                *edge += 1;
                if index[target] == UNVISITED {
                    index[target] = next_index;
                    low[target] = next_index;
                    next_index += 1;
                    stack.push(target);
                    on_stack[target] = true;
                    work.push((target, 0));
                } else if on_stack[target] {
                    low[node] = low[node].min(index[target]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                if stack.last() == Some(&node) {
                    stack.pop();
                    on_stack[node] = false;
                    if edges.of(node).contains(&node) {
                        components.push(vec![node]);
                    }
                    continue;
                }
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

/// Returns a shortest path `start -> .. -> start` inside `component` (breadth first).
fn cycle_through(start: usize, component: &HashSet<usize>, edges: &Edges) -> Vec<usize> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut frontier = VecDeque::from([start]);
    while let Some(node) = frontier.pop_front() {
        for &target in edges.of(node) {
            if !component.contains(&target) {
                continue;
            }
            if target == start {
                let mut path = vec![node];
                while let Some(&previous) = parent.get(path.last().expect("path is never empty")) {
                    path.push(previous);
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if target != start && !parent.contains_key(&target) {
                parent.insert(target, node);
                frontier.push_back(target);
            }
        }
    }
    vec![start, start]
}
