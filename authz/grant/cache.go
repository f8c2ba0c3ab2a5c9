package grant

import (
	"container/list"
	"sync"
	"time"
)

// verifiedCache remembers tokens whose signature and static claims verified,
// keyed by SHA-256 of the token bytes, in LRU order with a TTL. Only tokens
// that verified are stored, so forged tokens cannot fill it.
type verifiedCache struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	order *list.List // front = most recently used; values are *cacheItem
	items map[[32]byte]*list.Element
}

type cacheItem struct {
	sum    [32]byte
	claims *Claims // immutable once cached
	added  time.Time
}

func newVerifiedCache(max int, ttl time.Duration) *verifiedCache {
	return &verifiedCache{max: max, ttl: ttl, order: list.New(), items: make(map[[32]byte]*list.Element)}
}

func (c *verifiedCache) get(sum [32]byte, now time.Time) *Claims {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[sum]
	if !ok {
		return nil
	}
	it := el.Value.(*cacheItem)
	if now.Sub(it.added) > c.ttl || now.Before(it.added.Add(-c.ttl)) {
		c.order.Remove(el)
		delete(c.items, sum)
		return nil
	}
	c.order.MoveToFront(el)
	return it.claims
}

func (c *verifiedCache) put(sum [32]byte, claims *Claims, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[sum]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.items[sum] = c.order.PushFront(&cacheItem{sum: sum, claims: claims, added: now})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheItem).sum)
	}
}

func (c *verifiedCache) forgetIssuers(iss map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if it := el.Value.(*cacheItem); iss[it.claims.Issuer] {
			c.order.Remove(el)
			delete(c.items, it.sum)
		}
		el = next
	}
}

func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
