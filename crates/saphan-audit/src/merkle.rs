//! Merkle tree hashing as RFC 9162 §2.1 defines it (the Certificate Transparency tree): leaves
//! are `SHA-256(0x00 ‖ leaf)`, nodes `SHA-256(0x01 ‖ left ‖ right)`, split at the largest power
//! of two below the size.

use sha2::{Digest, Sha256};

fn leaf_hash(leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over the given leaves (record hashes).
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split(n);
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path of leaf `m`.
pub fn inclusion_path(leaves: &[[u8; 32]], m: usize) -> Vec<[u8; 32]> {
    assert!(m < leaves.len(), "leaf index out of range");
    let n = leaves.len();
    if n == 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut path = inclusion_path(&leaves[..k], m);
        path.push(merkle_root(&leaves[k..]));
        path
    } else {
        let mut path = inclusion_path(&leaves[k..], m - k);
        path.push(merkle_root(&leaves[..k]));
        path
    }
}

/// The root implied by leaf `index` of a tree of `size` leaves and its audit path (RFC 9162
/// §2.1.3.2); `None` if the path has the wrong shape.
pub fn root_from_inclusion_path(
    leaf: &[u8; 32],
    index: u64,
    size: u64,
    path: &[[u8; 32]],
) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf_hash(leaf);
    for p in path {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| Sha256::digest(i.to_be_bytes()).into())
            .collect()
    }

    #[test]
    fn every_path_of_every_small_tree_verifies_and_wrong_ones_do_not() {
        for n in 1..=40 {
            let l = leaves(n);
            let root = merkle_root(&l);
            for m in 0..n {
                let path = inclusion_path(&l, m);
                assert_eq!(
                    root_from_inclusion_path(&l[m], m as u64, n as u64, &path),
                    Some(root),
                    "n={n} m={m}"
                );
                let other = (m + 1) % n;
                if other != m {
                    assert_ne!(
                        root_from_inclusion_path(&l[other], m as u64, n as u64, &path),
                        Some(root)
                    );
                }
            }
        }
    }

    #[test]
    fn rfc9162_empty_and_single_leaf_hashes() {
        // MTH({}) = SHA-256 of the empty string.
        assert_eq!(
            hex::encode(merkle_root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Three leaves: root = H(1 ‖ H(1 ‖ h0 ‖ h1) ‖ h2) with hi = H(0 ‖ di).
        let l = leaves(3);
        let expected = node_hash(
            &node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1])),
            &leaf_hash(&l[2]),
        );
        assert_eq!(merkle_root(&l), expected);
    }
}
