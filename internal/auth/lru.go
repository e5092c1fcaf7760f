package auth

import "container/list"

// lru is a map of at most max entries that drops the least recently used one to
// make room. It is not safe for concurrent use: its owner locks.
type lru[V any] struct {
	max   int
	order list.List // of *lruEntry[V], most recently used first
	items map[string]*list.Element
}

type lruEntry[V any] struct {
	key string
	val V
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, items: make(map[string]*list.Element)}
}

// get returns the value of key, to read or update in place, and marks it used.
func (c *lru[V]) get(key string) (*V, bool) {
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return &el.Value.(*lruEntry[V]).val, true
}

// put sets key to v, marks it used, and drops the least recently used entry if
// the map is over max. It returns the stored value, to update in place.
func (c *lru[V]) put(key string, v V) *V {
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*lruEntry[V])
		e.val = v
		return &e.val
	}
	e := &lruEntry[V]{key: key, val: v}
	c.items[key] = c.order.PushFront(e)
	if c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry[V]).key)
	}
	return &e.val
}

// remove drops key.
func (c *lru[V]) remove(key string) {
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
}

func (c *lru[V]) len() int { return c.order.Len() }
