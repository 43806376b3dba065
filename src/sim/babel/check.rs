//! The forwarding check: from every live node to every destination it can reach in the live
//! topology, follow the selected next hops (the routes the machines reported to their kernel)
//! and see where packets end up.

/// No route (the kernel table has no entry for the destination).
pub const NO_ROUTE: u32 = u32::MAX;
/// A route through an interface the simulator does not know, or naming a neighbour address
/// that is not the peer on that link: a machine bug, counted as a black hole.
pub const BOGUS_ROUTE: u32 = u32::MAX - 1;

/// What following the selected next hops gave, over every (source, destination) pair of live
/// nodes in one live component, `source ≠ destination`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Pairs whose packets reach the destination.
    pub delivered: usize,
    /// Pairs whose packets meet a node with no route to the destination (the source
    /// included), or a bogus route.
    pub no_route: usize,
    /// Pairs whose packets are sent into a link that is down or to a node that is down.
    pub dead_link: usize,
    /// Pairs whose packets loop.
    pub looped: usize,
}

impl Verdict {
    /// Every reachable destination is reached from everywhere.
    pub fn converged(&self) -> bool {
        self.no_route == 0 && self.dead_link == 0 && self.looped == 0
    }

    pub fn pairs(&self) -> usize {
        self.delivered + self.no_route + self.dead_link + self.looped
    }
}

/// The world as the check sees it.
pub struct World<'a> {
    /// `fib[node][destination]`: the link id packets for `destination` leave on, or
    /// [`NO_ROUTE`] / [`BOGUS_ROUTE`].
    pub fib: &'a [&'a [u32]],
    /// Per link: its two ends and whether it is up.
    pub links: &'a [(usize, usize, bool)],
    /// Per node: its live component, `u32::MAX` when it is down.
    pub component: &'a [u32],
}

const UNKNOWN: u8 = 0;
const VISITING: u8 = 1;
const DELIVERED: u8 = 2;
const NO_ROUTE_HERE: u8 = 3;
const DEAD_LINK: u8 = 4;
const LOOPED: u8 = 5;

/// Follows next hops for every pair, in O(nodes) per destination: each node's fate for a
/// destination is found once and shared by every path through it.
pub fn forwarding(world: &World<'_>) -> Verdict {
    let n = world.fib.len();
    let mut verdict = Verdict::default();
    let mut fate = vec![UNKNOWN; n];
    let mut path = Vec::new();
    for d in 0..n {
        if world.component[d] == u32::MAX {
            continue;
        }
        fate.fill(UNKNOWN);
        fate[d] = DELIVERED;
        for s in 0..n {
            if s == d || world.component[s] != world.component[d] {
                continue;
            }
            path.clear();
            let mut v = s;
            let end = loop {
                match fate[v] {
                    UNKNOWN => {}
                    VISITING => break LOOPED,
                    known => break known,
                }
                fate[v] = VISITING;
                path.push(v);
                let link = world.fib[v][d];
                let Some(&(a, b, up)) = world.links.get(link as usize) else { break NO_ROUTE_HERE };
                let next = if a == v { b } else { a };
                if !up || world.component[next] == u32::MAX || (a != v && b != v) {
                    break DEAD_LINK;
                }
                v = next;
            };
            for &p in &path {
                fate[p] = end;
            }
            match end {
                DELIVERED => verdict.delivered += 1,
                NO_ROUTE_HERE => verdict.no_route += 1,
                DEAD_LINK => verdict.dead_link += 1,
                _ => verdict.looped += 1,
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_black_holes_and_dead_links_are_told_apart() {
        // 0 — 1 — 2 over links 0 (0–1) and 1 (1–2).
        let links = [(0, 1, true), (1, 2, true)];
        let component = [0, 0, 0];
        let good = vec![vec![NO_ROUTE, 0, 0], vec![0, NO_ROUTE, 1], vec![1, 1, NO_ROUTE]];
        let run = |f: &[Vec<u32>], links: &[(usize, usize, bool)], component: &[u32]| {
            let fib: Vec<&[u32]> = f.iter().map(|r| r.as_slice()).collect();
            forwarding(&World { fib: &fib, links, component })
        };
        let v = run(&good, &links, &component);
        assert_eq!(v, Verdict { delivered: 6, ..Verdict::default() });
        // 1 sends traffic for 2 back to 0: 0 and 1 loop.
        let mut looping = good.clone();
        looping[1][2] = 0;
        let v = run(&looping, &links, &component);
        assert_eq!((v.looped, v.delivered), (2, 4));
        let mut hole = good.clone();
        hole[1][2] = NO_ROUTE;
        let v = run(&hole, &links, &component);
        assert_eq!((v.no_route, v.delivered), (2, 4));
        let down = [(0, 1, true), (1, 2, false)];
        let split = [0, 0, 1];
        let v = run(&good, &down, &split);
        assert_eq!(v, Verdict { delivered: 2, ..Verdict::default() }, "only 0 and 1 can reach each other");
        // Routes into the down link, as if 2 were still reachable another way.
        let v = run(&good, &down, &component);
        assert_eq!((v.dead_link, v.delivered), (4, 2));
    }
}
