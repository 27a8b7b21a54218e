//! Almanac aggregate kernels for windowed aggregations.
//!
//! The offline path (a sliding sweep that adds and removes events) and the
//! online path (merging per-tile partial states read from a key-value store)
//! must give bit-identical answers. Floating-point addition is not
//! associative, so every state here is designed so that its *result* is a
//! function of the multiset of values it has seen only, never of the order
//! of `add` / `sub` / `merge` calls:
//!
//! * sums are exact (Shewchuk expansions) and rounded once, correctly;
//! * anything derived from a sum (variance) is computed from the exact value,
//!   via a canonical representation, so the internal layout cannot leak;
//! * sketches (HLL) use integer state and a fixed hash, and their floating
//!   point estimate is computed from an exactly-summed integer;
//! * order-based states (min/max, last-n) use total orders with explicit
//!   tie-breaking.
//!
//! Pure `std`, no `unsafe`, no panics on any input.



use std::cmp::Ordering;

// ---------------------------------------------------------------------------
// Byte helpers (little endian, bounds-checked; never panic on short input)
// ---------------------------------------------------------------------------

/// Cursor over untrusted bytes: every read returns `None` when short.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let src = self.buf.get(self.pos..end)?;
        let mut out = [0u8; N];
        out.copy_from_slice(src);
        self.pos = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take()?))
    }
    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take()?))
    }
    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take()?))
    }
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// Serialization format version for every state in this file.
const FORMAT_V1: u8 = 1;

// ---------------------------------------------------------------------------
// Error-free transformations
// ---------------------------------------------------------------------------

/// `2^k` for `k` in the normal exponent range (caller guarantees the range).
fn pow2(k: i32) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Carry unit `U = 2^1000`: multiples of it are moved out of the expansion
/// so that no partial sum can ever overflow, whatever the add order.
fn carry_unit() -> f64 {
    pow2(1000)
}

/// Exact product `a*b = p + e` (Dekker/Kahan two-product via FMA). Exact when
/// the product neither overflows nor underflows; on overflow the error term
/// would be `-inf`, so it is dropped and only the (infinite) `p` is kept.
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    if !p.is_finite() {
        return (p, 0.0);
    }
    (p, a.mul_add(b, -p))
}

/// Shewchuk's grow-expansion (the inner loop of Python's `math.fsum`): adds
/// `x` to the non-overlapping, increasing-magnitude expansion `parts`
/// exactly, dropping zero terms. Caller guarantees no intermediate overflow.
fn grow(parts: &mut Vec<f64>, mut x: f64) {
    let mut kept = 0;
    for j in 0..parts.len() {
        let mut y = parts[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        let lo = y - (hi - x);
        if lo != 0.0 {
            parts[kept] = lo;
            kept += 1;
        }
        x = hi;
    }
    parts.truncate(kept);
    if x != 0.0 {
        parts.push(x);
    }
}

/// Correctly rounded (half-even) value of a valid expansion: the final step
/// of `math.fsum`, including its fix for ties spread across partials (the
/// `[1e-16, 1, 1e16]` case): if the discarded tail has the same sign as the
/// first inexact remainder, the true value is past the halfway point.
fn round_parts(p: &[f64]) -> f64 {
    let Some((&top, _)) = p.split_last() else {
        return 0.0;
    };
    let (mut n, mut hi, mut lo) = (p.len() - 1, top, 0.0);
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = p[n];
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

// ---------------------------------------------------------------------------
// Wide fixed-point rounding (only used when the carry is non-zero)
// ---------------------------------------------------------------------------

/// Limbs of the fixed-point accumulator: LSB weight 2^-1074, 2176 bits, two's
/// complement. Wide enough for carry*2^1000 with |carry| <= 2^25 plus parts.
const FIX_LIMBS: usize = 34;

/// Exact fixed-point integer used to round `carry*U + parts` correctly when
/// that value may lie outside the range where float arithmetic is safe.
struct Fixed([u64; FIX_LIMBS]);

impl Fixed {
    /// Adds (or subtracts) `mant * 2^shift` ulps of 2^-1074.
    fn add_term(&mut self, mant: u64, shift: u32, neg: bool) {
        let idx = (shift / 64) as usize;
        let v = (mant as u128) << (shift % 64);
        let words = [v as u64, (v >> 64) as u64];
        let mut c = false;
        for i in idx..FIX_LIMBS {
            let w = words.get(i - idx).copied().unwrap_or(0);
            if i - idx >= 2 && !c {
                break;
            }
            let (r, c1) = if neg { self.0[i].overflowing_sub(w) } else { self.0[i].overflowing_add(w) };
            let (r, c2) = if neg { r.overflowing_sub(c as u64) } else { r.overflowing_add(c as u64) };
            self.0[i] = r;
            c = c1 || c2;
        }
    }

    /// Correctly rounded f64 of the fixed-point value.
    fn to_f64(&self) -> f64 {
        let neg = self.0[FIX_LIMBS - 1] >> 63 == 1;
        let mut mag = self.0;
        if neg {
            negate_limbs(&mut mag);
        }
        let v = round_magnitude(&mag);
        if neg { -v } else { v }
    }
}

fn negate_limbs(l: &mut [u64]) {
    let mut c = true;
    for w in l.iter_mut() {
        let (r, c1) = (!*w).overflowing_add(c as u64);
        *w = r;
        c = c1;
    }
}

/// 64 bits of `mag` starting at bit `s` (bits past the end read as 0).
fn bits_at(mag: &[u64], s: usize) -> u64 {
    let (i, off) = (s / 64, s % 64);
    let lo = mag.get(i).copied().unwrap_or(0) >> off;
    let hi = if off == 0 { 0 } else { mag.get(i + 1).copied().unwrap_or(0) << (64 - off) };
    lo | hi
}

/// True if any bit strictly below position `k` is set.
fn any_below(mag: &[u64], k: usize) -> bool {
    let (i, off) = (k / 64, k % 64);
    let full = mag.iter().take(i).any(|&w| w != 0);
    let part = off > 0 && mag.get(i).is_some_and(|&w| w & ((1u64 << off) - 1) != 0);
    full || part
}

/// Rounds a non-negative fixed-point magnitude (ulp 2^-1074) half-even. The
/// mantissa carry on round-up propagates into the exponent field for free.
fn round_magnitude(mag: &[u64]) -> f64 {
    let Some(i) = mag.iter().rposition(|&w| w != 0) else {
        return 0.0;
    };
    let h = i * 64 + 63 - mag[i].leading_zeros() as usize;
    if h <= 52 {
        return f64::from_bits(bits_at(mag, 0)); // exact: subnormal or 2^-1022 binade
    }
    let shift = h - 52;
    let mut top = bits_at(mag, shift) & ((1u64 << 53) - 1);
    let half = (bits_at(mag, shift - 1) & 1) == 1;
    if half && (any_below(mag, shift - 1) || top & 1 == 1) {
        top += 1;
    }
    let bits = ((shift as u64) << 52).saturating_add(top);
    if bits >= 0x7ff0_0000_0000_0000 { f64::INFINITY } else { f64::from_bits(bits) }
}

/// `(mantissa, shift)` with `x = ±mantissa * 2^(shift-1074)`, `x` finite.
fn decompose(x: f64) -> (u64, u32) {
    let b = x.to_bits();
    let e = ((b >> 52) & 0x7ff) as u32;
    let f = b & ((1u64 << 52) - 1);
    if e == 0 { (f, 0) } else { (f | (1u64 << 52), e - 1) }
}

/// Correctly rounded `carry*2^1000 + Σparts`. With |Σparts| < 2^1002, any
/// |carry| > 2^25 is certainly beyond f64::MAX.
fn round_wide(parts: &[f64], carry: i128) -> f64 {
    if carry.unsigned_abs() > 1u128 << 25 {
        return if carry > 0 { f64::INFINITY } else { f64::NEG_INFINITY };
    }
    let mut acc = Fixed([0; FIX_LIMBS]);
    acc.add_term(carry.unsigned_abs() as u64, 1000 + 1074, carry < 0);
    for &p in parts {
        let (m, s) = decompose(p);
        acc.add_term(m, s, p < 0.0);
    }
    acc.to_f64()
}

// ---------------------------------------------------------------------------
// ExactSum
// ---------------------------------------------------------------------------

/// Exact sum of f64 values (Shewchuk expansion, as in Python's `math.fsum`).
///
/// `value()` is the correctly rounded (half-even) exact sum, hence a function
/// of the multiset only. Non-finite inputs are counted instead of summed so
/// that `sub` can remove them again. Counts are signed and wrap, so the state
/// is a group: `sub` before `add` of the same value also cancels.
///
/// An exact zero sum is reported as `+0.0` (the sign of a zero sum would
/// otherwise depend on which signed zeros were seen, and removal could not
/// undo it).
#[derive(Clone, Debug, Default)]
pub struct ExactSum {
    /// Non-overlapping, increasing magnitude, no zeros, |top| < ~2^1000.
    parts: Vec<f64>,
    /// Exact multiples of 2^1000 moved out of `parts` (prevents overflow).
    carry: i128,
    non_finite: NonFinite,
}

impl ExactSum {
    pub fn new() -> Self {
        Self::default()
    }

    /// A state holding the single value `x`.
    pub fn from_value(x: f64) -> Self {
        let mut s = Self::new();
        s.add(x);
        s
    }

    pub fn add(&mut self, x: f64) {
        self.count_or_add(x, 1);
    }

    /// Exact removal of a value previously added (adds `-x`; for non-finite
    /// values decrements the matching counter).
    pub fn sub(&mut self, x: f64) {
        self.count_or_add(x, -1);
    }

    fn count_or_add(&mut self, x: f64, sign: i64) {
        if self.non_finite.count(x, sign) {
            return;
        }
        if sign > 0 {
            self.add_finite(x);
        } else {
            self.add_finite(-x);
        }
    }

    /// Adds a finite value, first splitting off multiples of 2^1000 into the
    /// carry so that partial sums stay far from overflow.
    fn add_finite(&mut self, x: f64) {
        if x == 0.0 {
            return;
        }
        let r = self.take_carry(x);
        grow(&mut self.parts, r);
        for _ in 0..4 {
            match self.parts.last() {
                Some(&top) if top.abs() >= carry_unit() => {
                    self.parts.pop();
                    let r = self.take_carry(top);
                    grow(&mut self.parts, r);
                }
                _ => break,
            }
        }
    }

    /// Moves `trunc(x/U)*U` into the carry, returning the exact remainder
    /// (exact by Sterbenz: k*U <= |x| < 2k*U).
    fn take_carry(&mut self, x: f64) -> f64 {
        let u = carry_unit();
        if x.abs() < u {
            return x;
        }
        let k = (x / u).trunc();
        self.carry = self.carry.wrapping_add(k as i128);
        x - k * u
    }

    /// Adds every value of `other` (exact).
    pub fn merge(&mut self, other: &ExactSum) {
        self.carry = self.carry.wrapping_add(other.carry);
        self.non_finite.merge(&other.non_finite);
        for &p in &other.parts {
            self.add_finite(p);
        }
    }

    /// The exact negation (used to subtract one expansion from another).
    fn negated(&self) -> ExactSum {
        ExactSum {
            parts: self.parts.iter().map(|p| -p).collect(),
            carry: self.carry.wrapping_neg(),
            non_finite: self.non_finite.negated(),
        }
    }

    /// Special result if any non-finite value is present: NaN if a NaN or
    /// both infinities are present, else the infinity present.
    fn special_value(&self) -> Option<f64> {
        self.non_finite.value()
    }

    /// True if a non-finite value is currently in the multiset.
    pub fn has_special(&self) -> bool {
        self.special_value().is_some()
    }

    /// Correctly rounded exact sum (see type docs for special values).
    pub fn value(&self) -> f64 {
        if let Some(s) = self.special_value() {
            return s;
        }
        if self.carry == 0 {
            round_parts(&self.parts)
        } else {
            round_wide(&self.parts, self.carry)
        }
    }

    /// The canonical expansion of the exact value: t1 = RN(V), t2 = RN(V-t1),
    /// ... It depends on the value only, not on how `parts` happen to be
    /// split, so products computed from it are order independent even when
    /// they underflow. `None` for special or too-large (>= ~2^1022) values.
    fn canonical_terms(&self) -> Option<Vec<f64>> {
        if self.has_special() {
            return None;
        }
        let mut parts = self.parts.clone();
        if self.carry != 0 {
            if self.carry.unsigned_abs() >= 1u128 << 22 {
                return None;
            }
            grow(&mut parts, self.carry as f64 * carry_unit());
        }
        let mut terms = Vec::new();
        for _ in 0..64 {
            if parts.is_empty() {
                return Some(terms);
            }
            let t = round_parts(&parts);
            if !t.is_finite() {
                return None;
            }
            terms.push(t);
            grow(&mut parts, -t);
        }
        None
    }

    /// `k * self` as an exact expansion (two-product of each canonical term).
    /// Exact when no product overflows or underflows (always exact for an
    /// integer `k` below overflow); overflow yields ±inf. Deterministic in
    /// the exact value of `self` in all cases. For special, huge (>= ~2^1022)
    /// or non-finite-`k` inputs the result is `value() * k` (rounded).
    pub fn scale(&self, k: f64) -> ExactSum {
        match self.canonical_terms() {
            Some(terms) if k.is_finite() => {
                let mut out = ExactSum::new();
                for t in terms {
                    let (p, e) = two_prod(t, k);
                    out.add(p);
                    out.add(e);
                }
                out
            }
            _ => ExactSum::from_value(self.value() * k),
        }
    }

    /// `self²` as an exact expansion: Σ t_i² + Σ_{i<j} 2·t_i·t_j over the
    /// canonical terms. Same exactness/determinism notes as `scale`.
    pub fn square(&self) -> ExactSum {
        let Some(t) = self.canonical_terms() else {
            let v = self.value();
            return ExactSum::from_value(v * v);
        };
        let mut out = ExactSum::new();
        for i in 0..t.len() {
            let (p, e) = two_prod(t[i], t[i]);
            out.add(p);
            out.add(e);
            for &tj in &t[i + 1..] {
                let (p, e) = two_prod(2.0 * t[i], tj);
                out.add(p);
                out.add(e);
            }
        }
        out
    }

    /// Layout: version u8, len u32, pos_inf i64, neg_inf i64, nan i64,
    /// carry i128, then `len` f64 partials; all little endian.
    pub fn to_bytes(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_V1);
        out.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.non_finite.pos_inf.to_le_bytes());
        out.extend_from_slice(&self.non_finite.neg_inf.to_le_bytes());
        out.extend_from_slice(&self.non_finite.nan.to_le_bytes());
        out.extend_from_slice(&self.carry.to_le_bytes());
        for p in &self.parts {
            out.extend_from_slice(&p.to_le_bytes());
        }
    }

    /// Parses a state; returns it and the number of bytes consumed. Partials
    /// are re-added one by one, so even a corrupted (overlapping, unsorted)
    /// expansion yields a valid state whose value is the exact sum stored.
    pub fn from_bytes(bytes: &[u8]) -> Option<(Self, usize)> {
        let mut r = Reader::new(bytes);
        let s = Self::read(&mut r)?;
        Some((s, r.pos))
    }

    fn read(r: &mut Reader) -> Option<Self> {
        if r.u8()? != FORMAT_V1 {
            return None;
        }
        let len = r.u32()? as usize;
        if len > r.remaining() / 8 {
            return None;
        }
        let non_finite = NonFinite { pos_inf: r.i64()?, neg_inf: r.i64()?, nan: r.i64()? };
        let mut s = ExactSum { non_finite, carry: r.i128()?, ..Self::default() };
        for _ in 0..len {
            let p = r.f64()?;
            if !p.is_finite() {
                return None;
            }
            s.add_finite(p);
        }
        Some(s)
    }
}

// ---------------------------------------------------------------------------
// SlidingSum
// ---------------------------------------------------------------------------

/// 32-bit chunks of the fixed-point number (LSB weight 2^-1074) that
/// [`SlidingSum`] keeps: the 68 digits of [`Fixed`]'s 34 limbs.
const CHUNKS: usize = FIX_LIMBS * 2;

/// Operations a [`SlidingSum`] takes between normalizations: each moves a
/// chunk by less than 2^32, so a chunk (below 2^32 after a normalization)
/// stays far inside `i64`.
const OPS_PER_NORMALIZE: u32 = 1 << 30;

/// The exact sum of a sliding window, for the offline sweep: each finite
/// value is split into three 32-bit digits of one fixed-point number (LSB
/// 2^-1074, the unit of every finite f64) and added to or subtracted from
/// signed 64-bit chunks, so adding or removing an event is three integer
/// additions, with no rounding, branching on magnitudes or allocation
/// ([`ExactSum`]'s expansion costs several of each). [`SlidingSum::value`]
/// propagates the carries and rounds once, half-even: the same bits as
/// [`ExactSum::value`] of the same multiset (both are the correctly
/// rounded exact sum, `+0.0` for zero), which is what an online read folds.
#[derive(Clone, Debug)]
pub struct SlidingSum {
    chunks: [i64; CHUNKS],
    /// Chunks at or above `lo` and below `hi` may be non-zero.
    lo: usize,
    hi: usize,
    ops: u32,
    non_finite: NonFinite,
}

impl Default for SlidingSum {
    fn default() -> Self {
        SlidingSum { chunks: [0; CHUNKS], lo: CHUNKS, hi: 0, ops: 0, non_finite: NonFinite::default() }
    }
}

impl SlidingSum {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, x: f64) {
        self.count_or_add(x, false);
    }

    /// Removes a value added before (exactly: the sum is then that of the
    /// values still in).
    pub fn sub(&mut self, x: f64) {
        self.count_or_add(x, true);
    }

    fn count_or_add(&mut self, x: f64, remove: bool) {
        if !self.non_finite.count(x, if remove { -1 } else { 1 }) && x != 0.0 {
            self.add_digits(x, remove ^ (x < 0.0));
        }
    }

    fn add_digits(&mut self, x: f64, negative: bool) {
        let (mantissa, shift) = decompose(x);
        let at = (shift / 32) as usize;
        let wide = u128::from(mantissa) << (shift % 32);
        let digits = [(wide & 0xffff_ffff) as i64, ((wide >> 32) & 0xffff_ffff) as i64, (wide >> 64) as i64];
        for (chunk, digit) in self.chunks[at..at + 3].iter_mut().zip(digits) {
            *chunk += if negative { -digit } else { digit };
        }
        self.lo = self.lo.min(at);
        self.hi = self.hi.max(at + 3);
        self.ops += 1;
        if self.ops >= OPS_PER_NORMALIZE {
            self.normalize();
        }
    }

    /// Carries propagated: every chunk below the top one a digit in
    /// `[0, 2^32)`, the top one signed (the value's sign). The value is
    /// unchanged.
    fn normalize(&mut self) {
        let mut carry: i64 = 0;
        for chunk in &mut self.chunks[..CHUNKS - 1] {
            let t = *chunk + carry;
            *chunk = t & 0xffff_ffff;
            carry = t >> 32;
        }
        self.chunks[CHUNKS - 1] += carry;
        self.lo = self.chunks.iter().position(|&c| c != 0).unwrap_or(CHUNKS);
        self.hi = self.chunks.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
        self.ops = 0;
    }

    /// Forgets every value (zeroing only the chunks in use).
    pub fn clear(&mut self) {
        if self.lo < self.hi {
            self.chunks[self.lo..self.hi].fill(0);
        }
        (self.lo, self.hi, self.ops, self.non_finite) = (CHUNKS, 0, 0, NonFinite::default());
    }

    /// The correctly rounded (half-even) sum; NaN and the infinities as
    /// [`ExactSum::value`] gives them.
    pub fn value(&self) -> f64 {
        if let Some(special) = self.non_finite.value() {
            return special;
        }
        if self.lo >= self.hi {
            return 0.0;
        }
        // Two's complement over Fixed's limbs: digits from the chunks with
        // their carries, then the sign extended to the top.
        let mut limbs = [0u64; FIX_LIMBS];
        let mut carry: i128 = 0;
        let mut k = self.lo;
        while k < CHUNKS && (k < self.hi || (carry != 0 && carry != -1)) {
            let t = i128::from(self.chunks[k]) + carry;
            limbs[k / 2] |= ((t as u64) & 0xffff_ffff) << (32 * (k % 2));
            carry = t >> 32;
            k += 1;
        }
        if carry < 0 {
            for digit in k..CHUNKS {
                limbs[digit / 2] |= 0xffff_ffff << (32 * (digit % 2));
            }
        }
        Fixed(limbs).to_f64()
    }
}

/// The non-finite values a sum holds, counted instead of summed so that
/// removing one is exact: the one rule for NaN and the infinities that
/// [`ExactSum`] and [`SlidingSum`] share. Counts are signed and wrap, so
/// removing before adding also cancels.
#[derive(Clone, Copy, Debug, Default)]
struct NonFinite {
    pos_inf: i64,
    neg_inf: i64,
    nan: i64,
}

impl NonFinite {
    /// Counts `x` with `sign` (1 add, -1 remove) if it is not finite;
    /// false (nothing counted) for a finite value.
    fn count(&mut self, x: f64, sign: i64) -> bool {
        let counter = if x.is_nan() {
            &mut self.nan
        } else if x == f64::INFINITY {
            &mut self.pos_inf
        } else if x == f64::NEG_INFINITY {
            &mut self.neg_inf
        } else {
            return false;
        };
        *counter = counter.wrapping_add(sign);
        true
    }

    fn merge(&mut self, other: &NonFinite) {
        self.pos_inf = self.pos_inf.wrapping_add(other.pos_inf);
        self.neg_inf = self.neg_inf.wrapping_add(other.neg_inf);
        self.nan = self.nan.wrapping_add(other.nan);
    }

    /// The counts of the negated values: the infinities swap.
    fn negated(&self) -> NonFinite {
        NonFinite { pos_inf: self.neg_inf, neg_inf: self.pos_inf, nan: self.nan }
    }

    /// The sum's value while any is in: NaN if a NaN or both infinities
    /// are, else the infinity that is; `None` for a finite sum.
    fn value(&self) -> Option<f64> {
        if self.nan != 0 || (self.pos_inf != 0 && self.neg_inf != 0) {
            Some(f64::NAN)
        } else if self.pos_inf != 0 {
            Some(f64::INFINITY)
        } else if self.neg_inf != 0 {
            Some(f64::NEG_INFINITY)
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Moments
// ---------------------------------------------------------------------------

/// `x² = p + e` exactly when representable (`e` via FMA). If `x²` overflows
/// (or `x` is not finite) only `p` is kept, so add and sub stay symmetric.
/// Squares below ~2^-969 lose bits to underflow: deterministic, tiny error.
fn square_parts(x: f64) -> (f64, f64) {
    two_prod(x, x)
}

/// Count, Σx and Σx² as exact sums: mean, variance and stddev that depend
/// only on the multiset of values.
///
/// Non-finite inputs: `mean` is `Σ/n` with Σ following `ExactSum` rules
/// (NaN, ±inf); `variance`/`stddev` are NaN if any NaN or ±inf is present.
/// Finite inputs whose squares overflow (|x| > ~1.34e154) make Σx² = +inf and
/// variance +inf. If the exact `D = n·S2 − S1²` is not representable
/// (roughly |x| > 1e154/√n) a rounded fallback is used: still deterministic,
/// no longer exact. `n` is converted with `as f64`, so beyond 2^53 events the
/// scaling by `n` is rounded (still deterministic).
#[derive(Clone, Debug, Default)]
pub struct Moments {
    /// Wraps on `sub` below zero so that add/sub stay exact inverses.
    n: u64,
    s1: ExactSum,
    s2: ExactSum,
}

impl Moments {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, x: f64) {
        let (p, e) = square_parts(x);
        self.n = self.n.wrapping_add(1);
        self.s1.add(x);
        self.s2.add(p);
        self.s2.add(e);
    }

    pub fn sub(&mut self, x: f64) {
        let (p, e) = square_parts(x);
        self.n = self.n.wrapping_sub(1);
        self.s1.sub(x);
        self.s2.sub(p);
        self.s2.sub(e);
    }

    pub fn merge(&mut self, other: &Moments) {
        self.n = self.n.wrapping_add(other.n);
        self.s1.merge(&other.s1);
        self.s2.merge(&other.s2);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// Correctly rounded Σx (or special).
    pub fn sum(&self) -> f64 {
        self.s1.value()
    }

    /// `round(Σx) / n`; None when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.n != 0).then(|| self.s1.value() / self.n as f64)
    }

    /// Sample variance (n−1). None when n < 2.
    pub fn variance(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        if self.s1.has_special() {
            return Some(f64::NAN);
        }
        let denom = self.n as f64 * (self.n - 1) as f64;
        Some(match self.exact_d() {
            Some(d) => d.max(0.0) / denom,
            None => self.approx_variance(),
        })
    }

    pub fn stddev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    /// `D = n·S2 − S1²` computed exactly and rounded once; None if any part
    /// overflowed (then only the rounded fallback is meaningful).
    fn exact_d(&self) -> Option<f64> {
        if self.s2.has_special() {
            return None;
        }
        let mut d = self.s2.scale(self.n as f64);
        d.merge(&self.s1.square().negated());
        let v = d.value();
        v.is_finite().then_some(v)
    }

    /// Deterministic but inexact variance from the rounded sums, for data
    /// too large for the exact path. +inf when Σx² overflowed.
    fn approx_variance(&self) -> f64 {
        let n = self.n as f64;
        let mean = self.s1.value() / n;
        let mean_sq = self.s2.value() / n;
        if !mean_sq.is_finite() {
            return f64::INFINITY; // `max` below would turn inf - inf into 0
        }
        (mean_sq - mean * mean).max(0.0) * (n / (n - 1.0))
    }

    /// Layout: version u8, n u64, then s1 and s2 in `ExactSum` format.
    pub fn to_bytes(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.n.to_le_bytes());
        self.s1.to_bytes(out);
        self.s2.to_bytes(out);
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<(Self, usize)> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT_V1 {
            return None;
        }
        let n = r.u64()?;
        let s1 = ExactSum::read(&mut r)?;
        let s2 = ExactSum::read(&mut r)?;
        Some((Moments { n, s1, s2 }, r.pos))
    }
}

// ---------------------------------------------------------------------------
// IntSum
// ---------------------------------------------------------------------------

/// Sum of i64 values in an i128 accumulator: exact for any order of up to
/// 2^63 operations, so intermediate overflow never matters; the result is
/// null (None) if it does not fit in i64, never wrapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntSum {
    acc: i128,
}

impl IntSum {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, x: i64) {
        self.acc = self.acc.wrapping_add(x as i128);
    }
    pub fn sub(&mut self, x: i64) {
        self.acc = self.acc.wrapping_sub(x as i128);
    }
    pub fn merge(&mut self, other: &IntSum) {
        self.acc = self.acc.wrapping_add(other.acc);
    }
    pub fn value(&self) -> Option<i64> {
        i64::try_from(self.acc).ok()
    }
    /// Layout: version u8, acc i128 LE.
    pub fn to_bytes(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.acc.to_le_bytes());
    }
    pub fn from_bytes(bytes: &[u8]) -> Option<(Self, usize)> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT_V1 {
            return None;
        }
        Some((IntSum { acc: r.i128()? }, r.pos))
    }
}

// ---------------------------------------------------------------------------
// Min / max under a total order
// ---------------------------------------------------------------------------

/// Total order for SQL min/max on f64: `-inf < … < -0.0 < 0.0 < … < +inf <
/// NaN`, with all NaNs equal. Unlike `f64::total_cmp`, NaN sign and payload
/// are ignored, so the winner never depends on which NaN arrived first.
pub fn total_cmp_sql(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.total_cmp(&b),
    }
}

/// A type with a total order and a canonical representative per class, so
/// that min/max results are bit-identical whatever the input order.
pub trait SqlOrd: Copy {
    fn sql_cmp(&self, other: &Self) -> Ordering;
    /// The single representative of this value's equivalence class.
    fn canonical(self) -> Self {
        self
    }
}

impl SqlOrd for f64 {
    fn sql_cmp(&self, other: &Self) -> Ordering {
        total_cmp_sql(*self, *other)
    }
    fn canonical(self) -> Self {
        if self.is_nan() { f64::NAN } else { self }
    }
}

impl SqlOrd for i64 {
    fn sql_cmp(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
}

/// Insert-only min and max (the sliding offline path uses a monotonic deque
/// with the same `SqlOrd` comparison).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinMax<T> {
    min: Option<T>,
    max: Option<T>,
}

impl<T: SqlOrd> Default for MinMax<T> {
    fn default() -> Self {
        MinMax { min: None, max: None }
    }
}

impl<T: SqlOrd> MinMax<T> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, x: T) {
        let x = x.canonical();
        if self.min.is_none_or(|m| x.sql_cmp(&m) == Ordering::Less) {
            self.min = Some(x);
        }
        if self.max.is_none_or(|m| x.sql_cmp(&m) == Ordering::Greater) {
            self.max = Some(x);
        }
    }
    pub fn merge(&mut self, other: &MinMax<T>) {
        for x in [other.min, other.max].into_iter().flatten() {
            self.add(x);
        }
    }
    pub fn min(&self) -> Option<T> {
        self.min
    }
    pub fn max(&self) -> Option<T> {
        self.max
    }
}

/// Minimum under `total_cmp_sql`; NaN results are the canonical `f64::NAN`.
pub fn min_of<I: IntoIterator<Item = f64>>(it: I) -> Option<f64> {
    it.into_iter().min_by(|a, b| total_cmp_sql(*a, *b)).map(SqlOrd::canonical)
}

/// Maximum under `total_cmp_sql`; NaN results are the canonical `f64::NAN`.
pub fn max_of<I: IntoIterator<Item = f64>>(it: I) -> Option<f64> {
    it.into_iter().max_by(|a, b| total_cmp_sql(*a, *b)).map(SqlOrd::canonical)
}

// ---------------------------------------------------------------------------
// Hashing (XXH64)
// ---------------------------------------------------------------------------

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn le_u64(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |a, &x| (a << 8) | x as u64)
}

fn xxh_round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

fn xxh_merge(acc: u64, v: u64) -> u64 {
    (acc ^ xxh_round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

/// Bulk phase of XXH64 over 32-byte stripes.
fn xxh64_stripes(stripes: &[u8], seed: u64) -> u64 {
    let mut v = [seed.wrapping_add(P1).wrapping_add(P2), seed.wrapping_add(P2), seed, seed.wrapping_sub(P1)];
    for stripe in stripes.chunks_exact(32) {
        for (lane, w) in v.iter_mut().zip(stripe.chunks_exact(8)) {
            *lane = xxh_round(*lane, le_u64(w));
        }
    }
    let mut h = v[0].rotate_left(1).wrapping_add(v[1].rotate_left(7));
    h = h.wrapping_add(v[2].rotate_left(12)).wrapping_add(v[3].rotate_left(18));
    v.iter().fold(h, |h, &lane| xxh_merge(h, lane))
}

/// XXH64 (Yann Collet's xxHash, 64-bit variant), bit-exact with the
/// reference implementation: a fixed, portable, well-tested hash, so sketch
/// states written by one process can be merged by any other.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let bulk = data.len() / 32 * 32;
    let (stripes, tail) = data.split_at(bulk);
    let mut h = if bulk > 0 { xxh64_stripes(stripes, seed) } else { seed.wrapping_add(P5) };
    h = h.wrapping_add(data.len() as u64);
    let mut words = tail.chunks_exact(8);
    for w in &mut words {
        h ^= xxh_round(0, le_u64(w));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    }
    let mut rest = words.remainder();
    if rest.len() >= 4 {
        h ^= le_u64(&rest[..4]).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= (b as u64).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// Type tags for `hash_bytes`: equal bytes of different types hash apart.
pub const TAG_BYTES: u8 = 0;
pub const TAG_I64: u8 = 1;
pub const TAG_STR: u8 = 2;
pub const TAG_F64: u8 = 3;

/// `XXH64(bytes, seed = tag)`.
pub fn hash_bytes(tag: u8, bytes: &[u8]) -> u64 {
    xxh64(bytes, tag as u64)
}

pub fn hash_i64(v: i64) -> u64 {
    hash_bytes(TAG_I64, &v.to_le_bytes())
}

pub fn hash_str(s: &str) -> u64 {
    hash_bytes(TAG_STR, s.as_bytes())
}

/// Hash of a float for distinct counting: `-0.0` is hashed as `0.0` and all
/// NaNs alike, following SQL equality (not the min/max total order).
pub fn hash_f64(v: f64) -> u64 {
    let c = if v == 0.0 { 0.0 } else if v.is_nan() { f64::NAN } else { v };
    hash_bytes(TAG_F64, &c.to_bits().to_le_bytes())
}

// ---------------------------------------------------------------------------
// HyperLogLog
// ---------------------------------------------------------------------------

pub const HLL_P: u32 = 12;
pub const HLL_M: usize = 1 << HLL_P;
/// Above this many non-zero registers the sparse list is converted to dense.
const HLL_SPARSE_MAX: usize = 512;
/// Largest possible rank: 64 - p + 1.
const HLL_MAX_RANK: u8 = (64 - HLL_P + 1) as u8;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Regs {
    /// Sorted by index, ranks >= 1; at most `HLL_SPARSE_MAX` entries.
    Sparse(Vec<(u16, u8)>),
    /// Exactly `HLL_M` registers; more than `HLL_SPARSE_MAX` non-zero.
    Dense(Vec<u8>),
}

/// HyperLogLog with p = 12 (4096 registers, ~1.6% standard error).
///
/// Registers only grow (max), so the state is a function of the set of
/// hashes inserted. The representation is a function of the registers
/// (sparse iff <= 512 non-zero), so serialized bytes are canonical too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hll {
    regs: Regs,
}

impl Default for Hll {
    fn default() -> Self {
        Hll { regs: Regs::Sparse(Vec::new()) }
    }
}

/// Register index (top p bits) and rank (leading zeros of the rest + 1).
fn hll_split(h: u64) -> (u16, u8) {
    let idx = (h >> (64 - HLL_P)) as u16;
    let w = h << HLL_P;
    let rank = if w == 0 { HLL_MAX_RANK } else { w.leading_zeros() as u8 + 1 };
    (idx, rank)
}

impl Hll {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert_hash(&mut self, h: u64) {
        let (i, r) = hll_split(h);
        self.set_max(i, r);
    }

    pub fn insert_bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.insert_hash(hash_bytes(tag, bytes));
    }

    fn set_max(&mut self, i: u16, r: u8) {
        let too_big = match &mut self.regs {
            Regs::Sparse(v) => {
                match v.binary_search_by_key(&i, |e| e.0) {
                    Ok(k) => v[k].1 = v[k].1.max(r),
                    Err(k) => v.insert(k, (i, r)),
                }
                v.len() > HLL_SPARSE_MAX
            }
            Regs::Dense(d) => {
                if let Some(x) = d.get_mut(i as usize) {
                    *x = (*x).max(r);
                }
                false
            }
        };
        if too_big {
            self.regs = Regs::Dense(self.registers());
        }
    }

    /// All 4096 registers (dense view, whatever the representation).
    pub fn registers(&self) -> Vec<u8> {
        match &self.regs {
            Regs::Dense(d) => d.clone(),
            Regs::Sparse(v) => {
                let mut d = vec![0u8; HLL_M];
                for &(i, r) in v {
                    if let Some(x) = d.get_mut(i as usize) {
                        *x = r;
                    }
                }
                d
            }
        }
    }

    /// Non-zero registers as sorted `(index, rank)` pairs.
    fn nonzero(&self) -> Vec<(u16, u8)> {
        match &self.regs {
            Regs::Sparse(v) => v.clone(),
            Regs::Dense(d) => (0u16..).zip(d.iter().copied()).filter(|e| e.1 > 0).collect(),
        }
    }

    pub fn is_sparse(&self) -> bool {
        matches!(self.regs, Regs::Sparse(_))
    }

    /// Register-wise max (union of the underlying sets).
    pub fn merge(&mut self, other: &Hll) {
        for (i, r) in other.nonzero() {
            self.set_max(i, r);
        }
    }

    /// Standard HLL estimate with linear counting for small cardinalities.
    /// Σ2^-M is summed exactly as an integer (in units of 2^-53) and rounded
    /// once, so the estimate is identical for any representation or order.
    pub fn estimate(&self) -> u64 {
        let nz = self.nonzero();
        let zeros = (HLL_M - nz.len()) as u128;
        let units: u128 = nz.iter().map(|&(_, r)| 1u128 << (53 - r.min(HLL_MAX_RANK) as u32)).sum();
        let z = (zeros << 53) + units;
        let m = HLL_M as f64;
        let harmonic = z as f64 * pow2(-53);
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let mut e = alpha * m * m / harmonic;
        if e <= 2.5 * m && zeros > 0 {
            e = m * (m / zeros as f64).ln();
        }
        e.round() as u64
    }

    /// Layout: version u8, kind u8 (0 sparse, 1 dense); sparse: count u16,
    /// then (index u16, rank u8) pairs; dense: 4096 register bytes.
    pub fn to_bytes(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_V1);
        match &self.regs {
            Regs::Sparse(v) => {
                out.push(0);
                out.extend_from_slice(&(v.len() as u16).to_le_bytes());
                for &(i, r) in v {
                    out.extend_from_slice(&i.to_le_bytes());
                    out.push(r);
                }
            }
            Regs::Dense(d) => {
                out.push(1);
                out.extend_from_slice(d);
            }
        }
    }

    /// Parses and validates (sorted unique indices < 4096, ranks <= 53), then
    /// normalizes the representation so equal registers give equal states.
    pub fn from_bytes(bytes: &[u8]) -> Option<(Self, usize)> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT_V1 {
            return None;
        }
        let pairs = match r.u8()? {
            0 => Self::read_sparse(&mut r)?,
            1 => Self::read_dense(&mut r)?,
            _ => return None,
        };
        let mut h = Hll::new();
        for (i, rank) in pairs {
            h.set_max(i, rank);
        }
        Some((h, r.pos))
    }

    fn read_sparse(r: &mut Reader) -> Option<Vec<(u16, u8)>> {
        let n = r.u16()? as usize;
        let mut v: Vec<(u16, u8)> = Vec::with_capacity(n.min(HLL_M));
        for _ in 0..n {
            let (i, rank) = (r.u16()?, r.u8()?);
            let sorted = v.last().is_none_or(|p| p.0 < i);
            if !sorted || i as usize >= HLL_M || rank == 0 || rank > HLL_MAX_RANK {
                return None;
            }
            v.push((i, rank));
        }
        Some(v)
    }

    fn read_dense(r: &mut Reader) -> Option<Vec<(u16, u8)>> {
        let mut v = Vec::new();
        for i in 0..HLL_M as u16 {
            let rank = r.u8()?;
            if rank > HLL_MAX_RANK {
                return None;
            }
            if rank > 0 {
                v.push((i, rank));
            }
        }
        Some(v)
    }
}

// ---------------------------------------------------------------------------
// LastN
// ---------------------------------------------------------------------------

/// The `n` newest items by key `(ts, seq)` (larger is newer).
///
/// `(ts, seq)` identifies an event (seq is the unique ingestion sequence), so
/// inserting an existing key again is a no-op: inserts are idempotent, and
/// with unique keys the kept items are the n largest keys whatever the
/// insert/merge order. Insert-only (no removal).
#[derive(Clone, Debug, PartialEq)]
pub struct LastN<V> {
    cap: usize,
    /// Sorted by key, newest first; at most `cap` items.
    items: Vec<(i64, u64, V)>,
}

impl<V: Clone> LastN<V> {
    pub fn new(n: usize) -> Self {
        LastN { cap: n, items: Vec::new() }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn insert(&mut self, ts: i64, seq: u64, v: V) {
        let key = (ts, seq);
        let pos = self.items.binary_search_by(|e| key.cmp(&(e.0, e.1)));
        if let Err(i) = pos
            && i < self.cap
        {
            self.items.insert(i, (ts, seq, v));
            self.items.truncate(self.cap);
        }
    }

    /// Nulls are not items: `None` is ignored.
    pub fn insert_opt(&mut self, ts: i64, seq: u64, v: Option<V>) {
        if let Some(v) = v {
            self.insert(ts, seq, v);
        }
    }

    /// Union of both item sets, bounded by `self`'s capacity.
    pub fn merge(&mut self, other: &LastN<V>) {
        for (ts, seq, v) in &other.items {
            self.insert(*ts, *seq, v.clone());
        }
    }

    /// Values, newest first.
    pub fn values(&self) -> Vec<V> {
        self.items.iter().map(|e| e.2.clone()).collect()
    }

    /// `(ts, seq, value)` entries, newest first.
    pub fn entries(&self) -> &[(i64, u64, V)] {
        &self.items
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    // ---------------- deterministic PRNG ----------------

    /// splitmix64: tiny, deterministic, good enough to drive property tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 * pow2(-53)
        }
        fn sign(&mut self) -> f64 {
            if self.next() & 1 == 0 { 1.0 } else { -1.0 }
        }
        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                let j = self.below(i + 1);
                v.swap(i, j);
            }
        }
    }

    fn pool() -> Vec<f64> {
        vec![
            1e300, -1e300, 1e-300, -1e-300, 1e16, -1e16, 1.0, -1.0, 0.0, -0.0, 5e-324, -5e-324,
            f64::MIN_POSITIVE, f64::MAX, -f64::MAX, pow2(-53), pow2(-106), 1.5 * pow2(1000),
            -1.5 * pow2(1000), pow2(1023), 0.1, 1e308, -1e308, pow2(970), 3.0 * 5e-324, 1e-320,
            1e9, 1e154, 2e154,
        ]
    }

    /// `wild`: also raw random bit patterns (any exponent) and the pool.
    fn gen_value(r: &mut Rng, pool: &[f64], wild: bool) -> f64 {
        let s = r.sign();
        match r.below(if wild { 9 } else { 6 }) {
            0 => 1e9 + (r.unit() - 0.5) * 1e-3,
            1 => s * r.below(1000) as f64,
            2 => s * r.unit(),
            3 => s * r.unit() * 1e16,
            4 => 0.1,
            5 => s * r.unit() * 10f64.powi(r.below(201) as i32 - 100),
            6 => s * r.unit() * 10f64.powi(r.below(601) as i32 - 300),
            7 => pool[r.below(pool.len())],
            _ => {
                let x = f64::from_bits(r.next());
                if x.is_finite() { x } else { 0.5 }
            }
        }
    }

    /// Random multiset; scenario 1 appends negations of most values so the
    /// exact sum is small and decided by the low-order terms.
    fn scenario(r: &mut Rng, wild: bool) -> Vec<f64> {
        let p = pool();
        let n = 1 + r.below(40);
        let mut xs: Vec<f64> = (0..n).map(|_| gen_value(r, &p, wild)).collect();
        if r.below(2) == 0 {
            for i in 0..xs.len() {
                if r.below(4) != 0 {
                    let v = -xs[i];
                    xs.push(v);
                }
            }
        }
        r.shuffle(&mut xs);
        xs
    }

    // ---------------- independent exact reference ----------------
    //
    // Sign-magnitude big integers in u32 limbs (LSB weight 2^-2200), one
    // accumulator per sign; rounding goes through the hardware u64 -> f64
    // conversion (sticky bit jammed) plus exact power-of-two scaling, with a
    // separate fixed-point rule for the subnormal range.

    const REF_LSB: i32 = 2200;
    const REF_LIMBS: usize = 140;

    /// `x = ±m·2^e` exactly.
    fn split(x: f64) -> (bool, u128, i32) {
        let b = x.to_bits();
        let e = ((b >> 52) & 0x7ff) as i32;
        let f = (b & ((1u64 << 52) - 1)) as u128;
        let (m, e) = if e == 0 { (f, -1074) } else { (f | 1 << 52, e - 1075) };
        (x.is_sign_negative(), m, e)
    }

    fn add_u64_at(l: &mut [u32], mut i: usize, v: u64) {
        let mut c = v;
        while c != 0 {
            let s = l[i] as u64 + (c & 0xffff_ffff);
            l[i] = s as u32;
            c = (c >> 32) + (s >> 32);
            i += 1;
        }
    }

    struct RefAcc {
        pos: Vec<u32>,
        neg: Vec<u32>,
    }

    impl RefAcc {
        fn new() -> Self {
            RefAcc { pos: vec![0; REF_LIMBS], neg: vec![0; REF_LIMBS] }
        }
        fn add_term(&mut self, neg: bool, m: u128, e: i32) {
            let sh = (e + REF_LSB) as usize;
            let (w, b) = (sh / 32, sh % 32);
            let l = if neg { &mut self.neg } else { &mut self.pos };
            for k in 0..4 {
                let chunk = ((m >> (32 * k)) as u32 as u64) << b;
                add_u64_at(l, w + k, chunk);
            }
        }
        fn add_f64(&mut self, x: f64) {
            if x != 0.0 {
                let (n, m, e) = split(x);
                self.add_term(n, m, e);
            }
        }
        /// Adds `c·x·y` exactly, `c` a small power of two given as shift.
        fn add_product(&mut self, x: f64, y: f64, neg: bool, shift: i32) {
            if x != 0.0 && y != 0.0 {
                let ((nx, mx, ex), (ny, my, ey)) = (split(x), split(y));
                self.add_term(nx ^ ny ^ neg, mx * my, ex + ey + shift);
            }
        }
        fn round(&self) -> f64 {
            match self.pos.iter().rev().cmp(self.neg.iter().rev()) {
                Ordering::Equal => 0.0,
                Ordering::Greater => round_big(&sub_mag(&self.pos, &self.neg)),
                Ordering::Less => -round_big(&sub_mag(&self.neg, &self.pos)),
            }
        }
    }

    fn sub_mag(a: &[u32], b: &[u32]) -> Vec<u32> {
        let mut borrow = 0i64;
        let mut out = vec![0u32; a.len()];
        for i in 0..a.len() {
            let d = a[i] as i64 - b[i] as i64 - borrow;
            borrow = (d < 0) as i64;
            out[i] = d.rem_euclid(1 << 32) as u32;
        }
        out
    }

    fn bit(d: &[u32], i: usize) -> bool {
        (d[i / 32] >> (i % 32)) & 1 == 1
    }

    fn round_big(d: &[u32]) -> f64 {
        let h = (0..d.len() * 32).rev().find(|&i| bit(d, i)).expect("nonzero");
        if h < (REF_LSB - 1022) as usize {
            let p0 = (REF_LSB - 1074) as usize;
            let mut q: u64 = 0;
            for i in (p0..=h).rev() {
                q = q << 1 | bit(d, i) as u64;
            }
            let half = bit(d, p0 - 1);
            let sticky = (0..p0 - 1).any(|i| bit(d, i));
            if half && (sticky || q & 1 == 1) {
                q += 1;
            }
            return f64::from_bits(q);
        }
        let lo = h - 63;
        let mut t: u64 = 0;
        for i in (lo..=h).rev() {
            t = t << 1 | bit(d, i) as u64;
        }
        if (0..lo).any(|i| bit(d, i)) {
            t |= 1;
        }
        let mut v = t as f64;
        let mut e = lo as i32 - REF_LSB;
        while e != 0 {
            let step = e.clamp(-1000, 1000);
            v *= pow2(step);
            e -= step;
        }
        v
    }

    /// Reference with the documented special-value rules.
    fn ref_sum(xs: &[f64]) -> f64 {
        let has = |f: fn(&f64) -> bool| xs.iter().any(f);
        let (nan, pinf, ninf) = (has(|x| x.is_nan()), has(|x| *x == f64::INFINITY), has(|x| *x == f64::NEG_INFINITY));
        if nan || (pinf && ninf) {
            return f64::NAN;
        }
        if pinf || ninf {
            return if pinf { f64::INFINITY } else { f64::NEG_INFINITY };
        }
        let mut a = RefAcc::new();
        xs.iter().for_each(|&x| a.add_f64(x));
        a.round()
    }

    fn sum_of(xs: &[f64]) -> ExactSum {
        let mut s = ExactSum::new();
        xs.iter().for_each(|&x| s.add(x));
        s
    }

    fn bits(x: f64) -> u64 {
        x.to_bits()
    }

    fn obits(x: Option<f64>) -> Option<u64> {
        x.map(f64::to_bits)
    }

    #[test]
    fn reference_self_check() {
        assert_eq!(bits(ref_sum(&[1e16, 1.0, -1e16])), bits(1.0));
        assert_eq!(bits(ref_sum(&[0.1, 0.2])), bits(0.1 + 0.2));
        assert_eq!(bits(ref_sum(&[5e-324, 5e-324])), bits(1e-323));
        assert_eq!(bits(ref_sum(&[f64::MAX, f64::MAX])), bits(f64::INFINITY));
        let mut r = Rng(7);
        for _ in 0..2000 {
            let (a, b) = (gen_value(&mut r, &pool(), true), gen_value(&mut r, &pool(), true));
            assert_eq!(bits(ref_sum(&[a, b])), bits(if a + b == 0.0 { 0.0 } else { a + b }), "{a:e} {b:e}");
        }
    }

    // ---------------- ExactSum ----------------

    #[test]
    fn exact_sum_known_cases() {
        let h = pow2(-53);
        let cases: Vec<(Vec<f64>, f64)> = vec![
            (vec![], 0.0),
            (vec![-0.0], 0.0),
            (vec![-0.0, -0.0], 0.0),
            (vec![1e16, 1.0, -1e16], 1.0),
            (vec![1.0, h], 1.0),
            (vec![1.0, h, pow2(-300)], 1.0 + 2.0 * h),
            (vec![1.0, h, -pow2(-300)], 1.0),
            (vec![1e-16, 1.0, 1e16], 1e16 + 2.0),
            (vec![f64::MAX, f64::MAX, -f64::MAX], f64::MAX),
            (vec![f64::MAX, f64::MAX], f64::INFINITY),
            (vec![f64::MAX, pow2(970)], f64::INFINITY),
            (vec![f64::MAX, pow2(970), -pow2(-1000)], f64::MAX),
            (vec![f64::MAX, pow2(969)], f64::MAX),
            (vec![-f64::MAX, -pow2(970)], f64::NEG_INFINITY),
            (vec![1e308, 1e308, -1e308, -1e308, 1e-300], 1e-300),
            (vec![5e-324, -5e-324], 0.0),
            (vec![f64::INFINITY, 1.0], f64::INFINITY),
            (vec![f64::INFINITY, f64::NEG_INFINITY], f64::NAN),
            (vec![f64::NAN, 1.0], f64::NAN),
        ];
        for (xs, want) in cases {
            assert_eq!(bits(sum_of(&xs).value()), bits(want), "{xs:?}");
            assert_eq!(bits(ref_sum(&xs)), bits(want), "reference {xs:?}");
        }
    }

    #[test]
    fn exact_sum_matches_reference() {
        let mut r = Rng(1);
        for t in 0..4000 {
            let xs = scenario(&mut r, t % 2 == 0);
            let got = sum_of(&xs).value();
            assert_eq!(bits(got), bits(ref_sum(&xs)), "{xs:?}");
        }
    }

    #[test]
    fn sliding_sum_is_the_correctly_rounded_sum_as_exact_sum_gives_it() {
        let mut r = Rng(11);
        for t in 0..4000 {
            let xs = scenario(&mut r, t % 2 == 0);
            let mut s = SlidingSum::new();
            for (i, &x) in xs.iter().enumerate() {
                s.add(x);
                if i == xs.len() / 2 && t % 5 == 0 {
                    s.normalize();
                }
            }
            assert_eq!(bits(s.value()), bits(ref_sum(&xs)), "{xs:?}");
            assert_eq!(bits(s.value()), bits(sum_of(&xs).value()), "{xs:?}");
        }
    }

    #[test]
    fn sliding_sum_removal_normalization_and_reuse_leave_exactly_what_is_in() {
        let mut r = Rng(12);
        for t in 0..1500 {
            let xs = scenario_with_specials(&mut r, t);
            let extra = scenario(&mut r, true);
            let mut s = with_removals(&mut r, &xs, &extra, SlidingSum::new(), |s, x| s.add(x), |s, x| s.sub(x));
            let want = bits(ref_sum(&xs));
            assert_eq!(bits(s.value()), want, "{xs:?} {extra:?}");
            s.normalize();
            assert_eq!(bits(s.value()), want, "normalized: {xs:?}");
            s.clear();
            assert_eq!(bits(s.value()), bits(0.0));
            extra.iter().for_each(|&x| s.add(x));
            assert_eq!(bits(s.value()), bits(ref_sum(&extra)), "reused: {extra:?}");
        }
    }

    #[test]
    fn wide_rounding_agrees_with_fsum_rounding() {
        let mut r = Rng(2);
        for _ in 0..2000 {
            let s = sum_of(&scenario(&mut r, true));
            if s.carry == 0 && !s.has_special() {
                assert_eq!(bits(round_wide(&s.parts, 0)), bits(round_parts(&s.parts)));
            }
        }
    }

    /// [`scenario`], wild two times in three, with NaN and both
    /// infinities appended one time in seven.
    fn scenario_with_specials(r: &mut Rng, t: usize) -> Vec<f64> {
        let mut xs = scenario(r, !t.is_multiple_of(3));
        if t.is_multiple_of(7) {
            xs.extend([f64::INFINITY, f64::NAN, f64::NEG_INFINITY]);
        }
        xs
    }

    /// Splits `xs` into random chunks, sums each, merges in random order.
    fn merged_in_parts<T: Clone>(r: &mut Rng, xs: &[f64], mk: impl Fn(&[f64]) -> T, merge: impl Fn(&mut T, &T)) -> T {
        let mut cuts: Vec<usize> = (0..r.below(5)).map(|_| r.below(xs.len() + 1)).collect();
        cuts.extend([0, xs.len()]);
        cuts.sort();
        let mut parts: Vec<T> = cuts.windows(2).map(|w| mk(&xs[w[0]..w[1]])).collect();
        r.shuffle(&mut parts);
        let mut acc = mk(&[]);
        parts.iter().for_each(|p| merge(&mut acc, p));
        acc
    }

    /// Add `xs` and `extra` interleaved, then remove `extra` in another order.
    fn with_removals<T>(r: &mut Rng, xs: &[f64], extra: &[f64], mut st: T, add: impl Fn(&mut T, f64), sub: impl Fn(&mut T, f64)) -> T {
        let mut all: Vec<f64> = xs.iter().chain(extra).copied().collect();
        r.shuffle(&mut all);
        all.iter().for_each(|&x| add(&mut st, x));
        let mut ex = extra.to_vec();
        r.shuffle(&mut ex);
        ex.iter().for_each(|&x| sub(&mut st, x));
        st
    }

    #[test]
    fn exact_sum_order_merge_and_removal_invariance() {
        let mut r = Rng(3);
        for t in 0..1500 {
            let xs = scenario_with_specials(&mut r, t);
            let want = bits(sum_of(&xs).value());
            let mut perm = xs.clone();
            r.shuffle(&mut perm);
            assert_eq!(bits(sum_of(&perm).value()), want);
            let merged = merged_in_parts(&mut r, &xs, sum_of, |a, b| a.merge(b));
            assert_eq!(bits(merged.value()), want);
            let mut extra = scenario(&mut r, true);
            extra.push(f64::INFINITY);
            extra.push(f64::NAN);
            let st = with_removals(&mut r, &xs, &extra, ExactSum::new(), |s, x| s.add(x), |s, x| s.sub(x));
            assert_eq!(bits(st.value()), want, "{xs:?} + {extra:?}");
            // removal before addition also cancels (group property)
            let mut g = ExactSum::new();
            extra.iter().for_each(|&x| g.sub(x));
            perm.iter().chain(&extra).for_each(|&x| g.add(x));
            assert_eq!(bits(g.value()), want);
            // serialization round trip keeps the value and stays usable
            let mut buf = vec![];
            st.to_bytes(&mut buf);
            let (mut back, used) = ExactSum::from_bytes(&buf).expect("decode");
            assert_eq!(used, buf.len());
            assert_eq!(bits(back.value()), want);
            back.add(1.0);
            back.sub(1.0);
            assert_eq!(bits(back.value()), want);
        }
    }

    #[test]
    fn exact_sum_scale_and_square_match_reference() {
        let mut r = Rng(4);
        for t in 0..800 {
            // moderate magnitudes so that no product underflows or overflows
            let xs: Vec<f64> = scenario(&mut r, false).into_iter().filter(|x| x.abs() < 1e100 && (x.abs() > 1e-100 || *x == 0.0)).collect();
            let s = sum_of(&xs);
            let mut sq = RefAcc::new();
            for &a in &xs {
                for &b in &xs {
                    sq.add_product(a, b, false, 0);
                }
            }
            assert_eq!(bits(s.square().value()), bits(sq.round()), "{xs:?}");
            let k = [3.0, -7.0, 1e10 + 1.0, 0.1, 1.0 / 3.0][t % 5];
            let mut sc = RefAcc::new();
            xs.iter().for_each(|&a| sc.add_product(a, k, false, 0));
            assert_eq!(bits(s.scale(k).value()), bits(sc.round()), "{xs:?} * {k}");
        }
    }

    #[test]
    fn exact_sum_scale_and_square_representation_independent() {
        let mut r = Rng(5);
        for _ in 0..800 {
            let xs = scenario(&mut r, true);
            let a = sum_of(&xs);
            let b = merged_in_parts(&mut r, &xs, sum_of, |a, b| a.merge(b));
            assert_eq!(bits(a.square().value()), bits(b.square().value()), "{xs:?}");
            assert_eq!(bits(a.scale(37.0).value()), bits(b.scale(37.0).value()));
            assert_eq!(bits(a.scale(1e-300).value()), bits(b.scale(1e-300).value()));
        }
    }

    // ---------------- Moments ----------------

    fn moments_of(xs: &[f64]) -> Moments {
        let mut m = Moments::new();
        xs.iter().for_each(|&x| m.add(x));
        m
    }

    /// Exact two-pass-style reference: D = Σ_{i<j} (x_i − x_j)², a
    /// different algebraic route than n·Σx² − (Σx)², rounded once.
    fn ref_variance(xs: &[f64]) -> f64 {
        let mut d = RefAcc::new();
        for i in 0..xs.len() {
            for j in i + 1..xs.len() {
                d.add_product(xs[i], xs[i], false, 0);
                d.add_product(xs[j], xs[j], false, 0);
                d.add_product(xs[i], xs[j], true, 1);
            }
        }
        let n = xs.len() as f64;
        d.round().max(0.0) / (n * (n - 1.0))
    }

    fn well_conditioned(r: &mut Rng, kind: usize) -> Vec<f64> {
        let n = 2 + r.below(60);
        (0..n)
            .map(|_| match kind {
                0 => 1e9 + (r.unit() - 0.5) * 1e-3,
                1 => (r.unit() - 0.5) * 2e6,
                2 => r.below(10) as f64,
                3 => r.sign() * r.unit() * 10f64.powi(r.below(7) as i32 - 3),
                _ => 42.5,
            })
            .collect()
    }

    #[test]
    fn moments_match_exact_reference() {
        let mut r = Rng(6);
        for t in 0..600 {
            let xs = well_conditioned(&mut r, t % 5);
            let m = moments_of(&xs);
            let want = ref_variance(&xs);
            let got = m.variance().expect("n >= 2");
            assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}: {xs:?}");
            assert_eq!(bits(got), bits(want), "expected exact agreement");
            assert_eq!(bits(m.mean().expect("n > 0")), bits(ref_sum(&xs) / xs.len() as f64));
            assert_eq!(bits(m.stddev().expect("n >= 2")), bits(want.sqrt()));
        }
        let m = moments_of(&[5.0; 10]);
        assert_eq!(m.variance(), Some(0.0));
        assert_eq!(moments_of(&[1.0]).variance(), None);
        assert_eq!(Moments::new().mean(), None);
    }

    fn moment_bits(m: &Moments) -> (u64, Option<u64>, Option<u64>, Option<u64>) {
        (m.count(), obits(m.mean()), obits(m.variance()), obits(m.stddev()))
    }

    #[test]
    fn moments_order_merge_and_removal_invariance() {
        let mut r = Rng(8);
        for t in 0..1000 {
            let mut xs = scenario(&mut r, t % 2 == 0);
            if t % 11 == 0 {
                xs.push([f64::NAN, f64::INFINITY, f64::NEG_INFINITY][t % 3]);
            }
            let want = moment_bits(&moments_of(&xs));
            let mut perm = xs.clone();
            r.shuffle(&mut perm);
            assert_eq!(moment_bits(&moments_of(&perm)), want);
            let merged = merged_in_parts(&mut r, &xs, moments_of, |a, b| a.merge(b));
            assert_eq!(moment_bits(&merged), want, "{xs:?}");
            let mut extra = scenario(&mut r, true);
            extra.push(f64::NAN);
            let st = with_removals(&mut r, &xs, &extra, Moments::new(), |m, x| m.add(x), |m, x| m.sub(x));
            assert_eq!(moment_bits(&st), want, "{xs:?} + {extra:?}");
            let mut buf = vec![];
            st.to_bytes(&mut buf);
            let (back, used) = Moments::from_bytes(&buf).expect("decode");
            assert_eq!((moment_bits(&back), used), (want, buf.len()));
        }
    }

    #[test]
    fn moments_special_values() {
        let m = moments_of(&[1.0, f64::INFINITY]);
        assert_eq!(m.mean(), Some(f64::INFINITY));
        assert!(m.variance().is_some_and(f64::is_nan));
        let mut m = moments_of(&[1.0, f64::NAN, 3.0]);
        assert!(m.mean().is_some_and(f64::is_nan));
        m.sub(f64::NAN);
        assert_eq!((m.mean(), m.variance()), (Some(2.0), Some(2.0)));
        // squares overflow: documented +inf
        assert_eq!(moments_of(&[1e200, 1e200]).variance(), Some(f64::INFINITY));
        // n·Σx² overflows but D/(n(n−1)) does not: rounded fallback
        let v = moments_of(&[1e153, -1e153, 1e153, -1e153]).variance().expect("n");
        assert!((v / (4.0 / 3.0 * 1e306) - 1.0).abs() < 1e-12, "{v}");
    }

    // ---------------- IntSum ----------------

    #[test]
    fn int_sum_overflow_is_null() {
        let mut s = IntSum::new();
        s.add(i64::MAX);
        assert_eq!(s.value(), Some(i64::MAX));
        s.add(1);
        assert_eq!(s.value(), None);
        s.sub(1);
        assert_eq!(s.value(), Some(i64::MAX));
        let mut t = IntSum::new();
        t.add(i64::MIN);
        t.add(i64::MIN);
        assert_eq!(t.value(), None);
        s.merge(&t);
        assert_eq!(s.value(), None); // MAX + 2·MIN does not fit
        t.add(i64::MAX);
        t.add(i64::MAX);
        assert_eq!(t.value(), Some(-2));
        let mut buf = vec![];
        t.to_bytes(&mut buf);
        assert_eq!(IntSum::from_bytes(&buf), Some((t, 17)));
    }

    // ---------------- MinMax ----------------

    #[test]
    fn total_order_and_canonical_nan() {
        use Ordering::*;
        assert_eq!(total_cmp_sql(-0.0, 0.0), Less);
        assert_eq!(total_cmp_sql(f64::NAN, f64::INFINITY), Greater);
        assert_eq!(total_cmp_sql(-f64::NAN, f64::NAN), Equal);
        assert_eq!(total_cmp_sql(f64::NEG_INFINITY, -f64::MAX), Less);
        let odd_nan = f64::from_bits(0xfff8_0000_0000_1234);
        assert_eq!(max_of([1.0, odd_nan, 2.0]).map(bits), Some(bits(f64::NAN)));
        assert_eq!(min_of([odd_nan]).map(bits), Some(bits(f64::NAN)));
        assert_eq!(min_of([0.0, -0.0, 1.0]).map(bits), Some(bits(-0.0)));
        assert_eq!(max_of([0.0, -0.0, -1.0]).map(bits), Some(bits(0.0)));
        assert_eq!(min_of([]), None);
        let mut r = Rng(9);
        for _ in 0..300 {
            let mut xs = scenario(&mut r, true);
            xs.extend([odd_nan, -0.0, 0.0]);
            let (lo, hi) = (min_of(xs.clone()).map(bits), max_of(xs.clone()).map(bits));
            r.shuffle(&mut xs);
            let mm = merged_in_parts(&mut r, &xs, |s| { let mut m = MinMax::new(); s.iter().for_each(|&x| m.add(x)); m }, |a, b| a.merge(b));
            assert_eq!((mm.min().map(bits), mm.max().map(bits)), (lo, hi));
            assert_eq!((min_of(xs.clone()).map(bits), max_of(xs).map(bits)), (lo, hi));
        }
    }

    // ---------------- Hash and HLL ----------------

    #[test]
    fn xxh64_reference_vectors() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(xxh64(b"Nobody inspects the spammish repetition", 0), 0xFBCE_A83C_8A37_8BF1);
        assert_eq!(xxh64(&[b'a'; 32], 0), 0x856E_8432_98F9_9AD7);
        assert_ne!(hash_bytes(TAG_I64, b"x"), hash_bytes(TAG_STR, b"x"));
        assert_eq!(hash_f64(-0.0), hash_f64(0.0));
    }

    fn hll_of(vals: &[u64]) -> Hll {
        let mut h = Hll::new();
        vals.iter().for_each(|&v| h.insert_hash(hash_i64(v as i64)));
        h
    }

    #[test]
    fn hll_small_counts_are_exactish() {
        assert_eq!(Hll::new().estimate(), 0);
        for n in [1u64, 2, 3, 10, 50, 100] {
            let vals: Vec<u64> = (0..n).collect();
            let e = hll_of(&vals).estimate() as i64;
            assert!((e - n as i64).abs() <= 1, "n={n} e={e}");
            let dup: Vec<u64> = vals.iter().chain(&vals).copied().collect();
            assert_eq!(hll_of(&dup).estimate() as i64, e);
        }
    }

    #[test]
    fn hll_large_count_within_3_percent() {
        for (seed, n) in [(0u64, 100_000u64), (1_000_000, 100_000), (7, 20_000)] {
            let vals: Vec<u64> = (seed..seed + n).collect();
            let e = hll_of(&vals).estimate() as f64;
            let err = (e - n as f64).abs() / n as f64;
            assert!(err < 0.03, "n={n} e={e} err={err}");
        }
    }

    #[test]
    fn hll_order_merge_and_representation_independence() {
        let mut r = Rng(10);
        for n in [0usize, 1, 5, 300, 512, 513, 600, 3000, 20_000] {
            let vals: Vec<u64> = (0..n).map(|_| r.next() % (2 * n as u64 + 1)).collect();
            let a = hll_of(&vals);
            let mut perm = vals.clone();
            r.shuffle(&mut perm);
            let b = merged_in_parts(&mut r, &perm.iter().map(|&v| v as f64).collect::<Vec<_>>(), |s| hll_of(&s.iter().map(|&v| v as u64).collect::<Vec<_>>()), |x, y| x.merge(y));
            assert_eq!(a, b, "state differs for n={n}");
            assert_eq!(a.estimate(), b.estimate());
            let dense = Hll { regs: Regs::Dense(a.registers()) };
            assert_eq!(dense.estimate(), a.estimate(), "sparse vs dense n={n}");
            let mut one_by_one = Hll::new();
            one_by_one.merge(&dense);
            assert_eq!(one_by_one, a);
            for h in [&a, &dense] {
                let mut buf = vec![];
                h.to_bytes(&mut buf);
                let (back, used) = Hll::from_bytes(&buf).expect("decode");
                assert_eq!((&back, used), (&a, buf.len()));
            }
        }
    }

    // ---------------- LastN ----------------

    #[test]
    fn last_n_ties_by_seq_and_idempotent() {
        let mut l = LastN::new(2);
        l.insert(5, 1, "a");
        l.insert(4, 9, "c");
        l.insert(5, 2, "b");
        l.insert(5, 2, "dup");
        l.insert_opt(6, 0, None);
        assert_eq!(l.values(), vec!["b", "a"]);
        let mut z = LastN::new(0);
        z.insert(1, 1, 1);
        assert!(z.values().is_empty());
    }

    #[test]
    fn last_n_order_independent() {
        let mut r = Rng(11);
        for t in 0..300 {
            let cap = t % 7;
            let evs: Vec<(i64, u64, u32)> = (0..r.below(40)).map(|i| (r.below(5) as i64 - 2, i as u64 * 7 % 41, r.next() as u32)).collect();
            let mut sorted = evs.clone();
            sorted.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
            let want: Vec<u32> = sorted.iter().take(cap).map(|e| e.2).collect();
            let mut perm = evs.clone();
            r.shuffle(&mut perm);
            let mut parts: Vec<LastN<u32>> = perm.chunks(5).map(|c| { let mut l = LastN::new(cap); c.iter().for_each(|e| l.insert(e.0, e.1, e.2)); l }).collect();
            r.shuffle(&mut parts);
            let mut acc = LastN::new(cap);
            parts.iter().for_each(|p| acc.merge(p));
            assert_eq!(acc.values(), want);
        }
    }

    // ---------------- hostile bytes ----------------

    #[test]
    fn decoders_never_panic() {
        let mut r = Rng(12);
        let mut good = vec![];
        moments_of(&[1.0, 2.0, 1e300]).to_bytes(&mut good);
        hll_of(&(0..700).collect::<Vec<_>>()).to_bytes(&mut good);
        for t in 0..20_000 {
            let mut b: Vec<u8> = if t % 2 == 0 { good.clone() } else { (0..r.below(80)).map(|_| r.next() as u8).collect() };
            if !b.is_empty() {
                let i = r.below(b.len());
                b[i] ^= r.next() as u8;
                b.truncate(r.below(b.len() + 1));
            }
            for start in [0, 1] {
                let s = b.get(start..).unwrap_or(&[]);
                let _ = ExactSum::from_bytes(s).map(|(x, _)| x.value());
                let _ = Moments::from_bytes(s).map(|(x, _)| x.variance());
                let _ = IntSum::from_bytes(s).map(|(x, _)| x.value());
                let _ = Hll::from_bytes(s).map(|(x, _)| x.estimate());
            }
        }
    }
}
