//! The graphs the routing simulator runs on: a line, a grid, and random geometric graphs
//! (nodes in a unit square, joined when closer than a radius chosen for a target mean degree).
//! Generated from a seed alone; edges are listed once, lower node first, in a stable order, and
//! an edge's index is the link's id in the simulation.

use crate::rng::SplitMix64;
use std::collections::BTreeSet;

/// A topology to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// `0 — 1 — … — nodes-1`.
    Line { nodes: usize },
    /// `width × height` nodes, each joined to its 4 neighbours; node `y · width + x`.
    Grid { width: usize, height: usize },
    /// `nodes` points drawn in the unit square; the radius is the smallest that gives a mean
    /// degree of at least `mean_degree_milli / 1000`. Components left apart are joined to the
    /// rest by their shortest possible edge (counted in [`Graph::joined_components`]).
    Geometric { nodes: usize, mean_degree_milli: u32 },
}

impl Topology {
    pub fn nodes(&self) -> usize {
        match *self {
            Topology::Line { nodes } | Topology::Geometric { nodes, .. } => nodes,
            Topology::Grid { width, height } => width * height,
        }
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Topology::Line { nodes } => write!(f, "line of {nodes}"),
            Topology::Grid { width, height } => write!(f, "grid {width}x{height}"),
            Topology::Geometric { nodes, mean_degree_milli } => {
                write!(f, "geometric {nodes} nodes, mean degree {:.1}", f64::from(mean_degree_milli) / 1000.0)
            }
        }
    }
}

/// An undirected graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    pub nodes: usize,
    /// `(a, b)` with `a < b`, no duplicates.
    pub edges: Vec<(usize, usize)>,
    /// How many components a geometric graph had before they were joined (1: connected as
    /// drawn; always 1 for lines and grids).
    pub components_drawn: usize,
    /// Edges added to join them.
    pub joined_components: usize,
}

/// Coordinates in the unit square as integers (2^20 per side): exact and portable.
const SIDE: u64 = 1 << 20;

impl Graph {
    pub fn generate(topology: &Topology, rng: &mut SplitMix64) -> Graph {
        match *topology {
            Topology::Line { nodes } => Graph::from_edges(nodes, (1..nodes).map(|i| (i - 1, i)).collect()),
            Topology::Grid { width, height } => {
                let mut edges = Vec::new();
                for y in 0..height {
                    for x in 0..width {
                        let i = y * width + x;
                        if x + 1 < width {
                            edges.push((i, i + 1));
                        }
                        if y + 1 < height {
                            edges.push((i, i + width));
                        }
                    }
                }
                Graph::from_edges(width * height, edges)
            }
            Topology::Geometric { nodes, mean_degree_milli } => geometric(nodes, mean_degree_milli, rng),
        }
    }

    fn from_edges(nodes: usize, mut edges: Vec<(usize, usize)>) -> Graph {
        edges.sort_unstable();
        Graph { nodes, edges, components_drawn: 1, joined_components: 0 }
    }

    /// Neighbours of every node, ascending.
    pub fn adjacency(&self) -> Vec<Vec<usize>> {
        let mut adj = vec![Vec::new(); self.nodes];
        for &(a, b) in &self.edges {
            adj[a].push(b);
            adj[b].push(a);
        }
        for n in &mut adj {
            n.sort_unstable();
        }
        adj
    }

    /// The longest shortest path, in hops (over all edges; 0 for a disconnected graph's
    /// unreachable pairs).
    pub fn diameter(&self) -> usize {
        let adj = self.adjacency();
        let mut longest = 0;
        for s in 0..self.nodes {
            let mut dist = vec![usize::MAX; self.nodes];
            dist[s] = 0;
            let mut queue = std::collections::VecDeque::from([s]);
            while let Some(x) = queue.pop_front() {
                for &y in &adj[x] {
                    if dist[y] == usize::MAX {
                        dist[y] = dist[x] + 1;
                        longest = longest.max(dist[y]);
                        queue.push_back(y);
                    }
                }
            }
        }
        longest
    }

    pub fn mean_degree(&self) -> f64 {
        2.0 * self.edges.len() as f64 / self.nodes.max(1) as f64
    }

    /// The component of every node over the edges for which `up(edge index)` holds and
    /// whose ends are both `alive`; `u32::MAX` for nodes that are not alive.
    pub fn components(&self, alive: &[bool], up: impl Fn(usize) -> bool) -> Vec<u32> {
        let mut parent: Vec<usize> = (0..self.nodes).collect();
        fn root(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for (i, &(a, b)) in self.edges.iter().enumerate() {
            if up(i) && alive[a] && alive[b] {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                if ra != rb {
                    parent[ra.max(rb)] = ra.min(rb);
                }
            }
        }
        (0..self.nodes).map(|x| if alive[x] { root(&mut parent, x) as u32 } else { u32::MAX }).collect()
    }

    /// Edges whose loss leaves the graph connected (not bridges), by index.
    pub fn redundant_edges(&self) -> Vec<usize> {
        let alive = vec![true; self.nodes];
        let whole = count_components(&self.components(&alive, |_| true));
        (0..self.edges.len())
            .filter(|&e| count_components(&self.components(&alive, |i| i != e)) == whole)
            .collect()
    }
}

fn count_components(c: &[u32]) -> usize {
    c.iter().filter(|&&x| x != u32::MAX).collect::<BTreeSet<_>>().len()
}

fn geometric(nodes: usize, mean_degree_milli: u32, rng: &mut SplitMix64) -> Graph {
    let points: Vec<(u64, u64)> = (0..nodes).map(|_| (rng.below(SIDE), rng.below(SIDE))).collect();
    let d2 = |a: usize, b: usize| {
        let (pa, pb) = (points[a], points[b]);
        let (dx, dy) = (pa.0.abs_diff(pb.0), pa.1.abs_diff(pb.1));
        dx * dx + dy * dy
    };
    // Mean degree k needs k·n/2 edges: the k·n/2 shortest pairs, ties included (the radius is
    // the length of the last one). Only pairs within a generous radius are listed: the
    // expected degree within r is about n·π·r², so 4× the area needed is plenty.
    let want = (u64::from(mean_degree_milli) * nodes as u64).div_ceil(2000) as usize;
    let area = 4.0 * f64::from(mean_degree_milli) / 1000.0 / (std::f64::consts::PI * nodes.max(1) as f64);
    let mut r2 = ((area * (SIDE * SIDE) as f64) as u64).max(1);
    let pairs = loop {
        let pairs = close_pairs(&points, r2);
        if pairs.len() >= want || r2 >= 2 * SIDE * SIDE {
            break pairs;
        }
        r2 = r2.saturating_mul(2);
    };
    let mut pairs: Vec<(u64, usize, usize)> = pairs.into_iter().map(|(a, b)| (d2(a, b), a, b)).collect();
    pairs.sort_unstable();
    let radius2 = pairs.get(want.saturating_sub(1)).map_or(0, |p| p.0);
    let mut edges: Vec<(usize, usize)> =
        pairs.iter().take_while(|p| p.0 <= radius2 && want > 0).map(|p| (p.1, p.2)).collect();
    let alive = vec![true; nodes];
    let mut comp = Graph::from_edges(nodes, edges.clone()).components(&alive, |_| true);
    let components_drawn = count_components(&comp);
    // Join every component apart from node 0's by its shortest edge to the rest, one by one.
    let mut joined = 0;
    while count_components(&comp) > 1 {
        let apart = comp[(0..nodes).find(|&x| comp[x] != comp[0]).expect("more than one component")];
        let best = (0..nodes)
            .filter(|&a| comp[a] == apart)
            .flat_map(|a| (0..nodes).filter(|&b| comp[b] != apart).map(move |b| (a, b)))
            .map(|(a, b)| (d2(a, b), a.min(b), a.max(b)))
            .min()
            .expect("both sides are non-empty");
        edges.push((best.1, best.2));
        joined += 1;
        comp = Graph::from_edges(nodes, edges.clone()).components(&alive, |_| true);
    }
    Graph { components_drawn, joined_components: joined, ..Graph::from_edges(nodes, edges) }
}

/// Pairs `(a, b)`, `a < b`, at squared distance at most `r2`, found through a cell grid.
fn close_pairs(points: &[(u64, u64)], r2: u64) -> Vec<(usize, usize)> {
    let r = (r2 as f64).sqrt().ceil() as u64 + 1;
    let cells = (SIDE / r).clamp(1, 4096);
    let cell = |p: (u64, u64)| ((p.0 * cells / SIDE) as usize, (p.1 * cells / SIDE) as usize);
    let cells = cells as usize;
    let mut grid: Vec<Vec<usize>> = vec![Vec::new(); cells * cells];
    for (i, &p) in points.iter().enumerate() {
        let (cx, cy) = cell(p);
        grid[cy * cells + cx].push(i);
    }
    let mut out = Vec::new();
    for (a, &pa) in points.iter().enumerate() {
        let (cx, cy) = cell(pa);
        for y in cy.saturating_sub(1)..=(cy + 1).min(cells - 1) {
            for x in cx.saturating_sub(1)..=(cx + 1).min(cells - 1) {
                for &b in &grid[y * cells + x] {
                    let pb = points[b];
                    let (dx, dy) = (pa.0.abs_diff(pb.0), pa.1.abs_diff(pb.1));
                    if b > a && dx * dx + dy * dy <= r2 {
                        out.push((a, b));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_and_lines_have_the_expected_edges() {
        let g = Graph::generate(&Topology::Grid { width: 3, height: 2 }, &mut SplitMix64::new(1));
        assert_eq!(g.edges, vec![(0, 1), (0, 3), (1, 2), (1, 4), (2, 5), (3, 4), (4, 5)]);
        let l = Graph::generate(&Topology::Line { nodes: 4 }, &mut SplitMix64::new(1));
        assert_eq!(l.edges, vec![(0, 1), (1, 2), (2, 3)]);
        assert!(l.redundant_edges().is_empty(), "every edge of a line is a bridge");
        assert_eq!(g.redundant_edges().len(), 7, "every edge of a 3x2 grid is on a cycle");
    }

    #[test]
    fn geometric_graphs_are_connected_with_the_mean_degree_asked() {
        for seed in 0..5 {
            let t = Topology::Geometric { nodes: 200, mean_degree_milli: 5_000 };
            let g = Graph::generate(&t, &mut SplitMix64::new(seed));
            let c = g.components(&[true; 200], |_| true);
            assert!(c.iter().all(|&x| x == c[0]), "seed {seed}: not connected");
            let drawn = g.edges.len() - g.joined_components;
            assert!(2 * drawn >= 5 * 200 && 2 * drawn < 5 * 200 + 20, "seed {seed}: {drawn} edges drawn");
            assert_eq!(g, Graph::generate(&t, &mut SplitMix64::new(seed)));
        }
    }
}
