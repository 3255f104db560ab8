//! Quantiles from cumulative histogram buckets, computed the way PromQL's
//! `histogram_quantile` does (linear interpolation inside the bucket holding the rank).

/// One cumulative bucket: observations `<= le`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Upper bound (`+Inf` for the last bucket).
    pub le: f64,
    /// Cumulative count.
    pub count: f64,
}

/// `histogram_quantile(q, buckets)`: NaN without a `+Inf` bucket, with fewer than two buckets
/// or with no observations; the upper bound of the last finite bucket when the rank falls in
/// `+Inf`; otherwise linear interpolation inside the bucket, the lowest starting at 0.
pub fn histogram_quantile(q: f64, buckets: &[Bucket]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut b: Vec<Bucket> = buckets.to_vec();
    b.sort_by(|x, y| x.le.total_cmp(&y.le));
    // Same upper bound twice: add them (as Prometheus' coalesceBuckets does).
    let mut merged: Vec<Bucket> = Vec::with_capacity(b.len());
    for bucket in b {
        match merged.last_mut() {
            Some(last) if last.le == bucket.le => last.count += bucket.count,
            _ => merged.push(bucket),
        }
    }
    // Counts must not decrease (a scrape racing an update can make them): carry the maximum.
    let mut max = f64::NEG_INFINITY;
    for bucket in &mut merged {
        max = max.max(bucket.count);
        bucket.count = max;
    }
    let b = merged;
    if b.len() < 2 || b.last().map(|l| l.le) != Some(f64::INFINITY) {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let i = b[..b.len() - 1]
        .iter()
        .position(|x| x.count >= rank)
        .unwrap_or(b.len() - 1);
    if i == b.len() - 1 {
        return b[b.len() - 2].le;
    }
    if i == 0 && b[0].le <= 0.0 {
        return b[0].le;
    }
    let end = b[i].le;
    let mut count = b[i].count;
    let mut start = 0.0;
    if i > 0 {
        start = b[i - 1].le;
        count -= b[i - 1].count;
        rank -= b[i - 1].count;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(le, count)| Bucket { le, count })
            .collect()
    }

    #[test]
    fn interpolates_like_promql() {
        let b = h(&[(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (f64::INFINITY, 40.0)]);
        // rank 20 -> second bucket, 10 of 20 into it: 0.1 + 0.4 * 0.5
        assert!((histogram_quantile(0.5, &b) - 0.3).abs() < 1e-12);
        // rank 4 -> first bucket from 0
        assert!((histogram_quantile(0.1, &b) - 0.04).abs() < 1e-12);
        assert!((histogram_quantile(1.0, &b) - 1.0).abs() < 1e-12);
        let tail = h(&[(0.1, 1.0), (f64::INFINITY, 10.0)]);
        assert_eq!(histogram_quantile(0.99, &tail), 0.1);
        assert!(histogram_quantile(0.5, &h(&[(1.0, 0.0), (f64::INFINITY, 0.0)])).is_nan());
        assert!(histogram_quantile(0.5, &h(&[(1.0, 3.0)])).is_nan());
        assert_eq!(histogram_quantile(2.0, &b), f64::INFINITY);
    }
}
