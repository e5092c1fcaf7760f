package loadgen

import "math/bits"

// bitset is a set of small non-negative integers (message numbers of one sender).
type bitset []uint64

// set adds n and reports whether it was there already.
func (b *bitset) set(n uint64) (had bool) {
	word := int(n / 64)
	if word >= len(*b) {
		grown := make(bitset, max(word+1, 2*len(*b)))
		copy(grown, *b)
		*b = grown
	}
	bit := uint64(1) << (n % 64)
	had = (*b)[word]&bit != 0
	(*b)[word] |= bit
	return had
}

// count is the number of members.
func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// missingFrom counts the members of b that are not in o.
func (b bitset) missingFrom(o bitset) int {
	n := 0
	for i, w := range b {
		if i < len(o) {
			w &^= o[i]
		}
		n += bits.OnesCount64(w)
	}
	return n
}

// clone returns a copy.
func (b bitset) clone() bitset { return append(bitset(nil), b...) }
