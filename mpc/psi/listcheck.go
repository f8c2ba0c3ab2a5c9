package psi

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	r255p "github.com/bwesterb/go-ristretto"
)

// listDST is the hash-to-group tag of a named list. Unlike alignment, it
// is not per session: the provider encodes its list once and reuses the
// encoding for every check until the list changes.
func listDST(name string) []byte {
	return []byte("VEIL-PSI-V1-LIST-ristretto255_XMD:SHA-512_R255MAP_RO_" + name)
}

// ListKeyLen is the length of a list server key (a ristretto255 scalar).
const ListKeyLen = 32

// GenerateListKey returns a fresh random list server key, to be stored by
// the provider (it keeps cached encodings valid across restarts).
func GenerateListKey() ([]byte, error) {
	b, err := r255.RandomNonZeroScalar(nil).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("psi: generating list key: %w", err)
	}
	return b, nil
}

// ListInfo describes one encoded list held by a ListServer.
type ListInfo struct {
	Name    string     `json:"name"`
	Version string     `json:"version"` // content hash of the unique IDs
	Size    int        `json:"size"`
	Input   InputStats `json:"input"`
	// Encoded is true when SetList had to (re-)encode: false means the
	// list was unchanged and the cached encoding was kept.
	Encoded bool    `json:"encoded"`
	Seconds float64 `json:"seconds"`
}

type encodedList struct {
	info   ListInfo
	points []byte // key·H(y) for every unique y, in a random order
}

// ListServer is the provider side of list checks (unbalanced PSI). It
// holds named lists encoded once under a long-lived secret key k as
// k·H(y); each check then costs one scalar multiplication per bank item.
// It is safe for concurrent use.
type ListServer struct {
	key     r255p.Scalar
	workers int
	mu      sync.RWMutex
	lists   map[string]*encodedList
}

// NewListServer returns a server using key (from GenerateListKey); a nil
// key draws a random one, valid for this process only.
func NewListServer(key []byte, workers int) (*ListServer, error) {
	var s r255p.Scalar
	if key == nil {
		s = randomScalar()
	} else {
		if len(key) != ListKeyLen {
			return nil, fmt.Errorf("psi: list key is %d bytes, want %d", len(key), ListKeyLen)
		}
		if !s.SetBytesStrict((*[ListKeyLen]byte)(key)) {
			return nil, errors.New("psi: list key is not a reduced scalar")
		}
		if s.IsNonZeroI() == 0 {
			return nil, errors.New("psi: list key is zero")
		}
	}
	if workers <= 0 {
		workers = Config{}.withWorkers()
	}
	return &ListServer{key: s, workers: workers, lists: map[string]*encodedList{}}, nil
}

func (c Config) withWorkers() int {
	c.Session = "x"
	c, _ = c.normalized()
	return c.Workers
}

// listVersion hashes the sorted unique IDs: the same content gives the
// same version whatever the order or duplicates of the input.
func listVersion(uniq []string) string {
	sorted := slices.Clone(uniq)
	slices.Sort(sorted)
	h := sha256.New()
	var n [4]byte
	for _, id := range sorted {
		binary.BigEndian.PutUint32(n[:], uint32(len(id)))
		h.Write(n[:])
		h.Write(stringBytes(id))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// SetList installs or refreshes a named list. If the content is unchanged
// the cached encoding is kept and nothing is recomputed.
func (s *ListServer) SetList(ctx context.Context, name string, ids []string) (ListInfo, error) {
	start := time.Now()
	if name == "" || len(name) > 255 {
		return ListInfo{}, fmt.Errorf("psi: list name must be 1..255 bytes, got %d", len(name))
	}
	uniq, st, err := uniqueIDs(ids)
	if err != nil {
		return ListInfo{}, err
	}
	version := listVersion(uniq)
	s.mu.RLock()
	old := s.lists[name]
	s.mu.RUnlock()
	if old != nil && old.info.Version == version {
		info := old.info
		info.Encoded = false
		info.Input = st
		info.Seconds = time.Since(start).Seconds()
		return info, nil
	}
	perm, err := randomPerm(len(uniq))
	if err != nil {
		return ListInfo{}, err
	}
	key := &ecdhKey{dst: listDST(name), scalar: s.key, workers: s.workers}
	points := make([]byte, len(uniq)*pointLen)
	sc := key.scratches()
	err = ordered(ctx, s.workers, ownChunks(len(uniq), defaultChunk),
		func(w int, c *chunk) error {
			return key.hashBlind(sc[w], uniq, perm, c.lo, c.hi, points[c.lo*pointLen:c.hi*pointLen])
		},
		func(*chunk) error { return nil })
	if err != nil {
		return ListInfo{}, fmt.Errorf("psi: encoding list %q: %w", name, err)
	}
	el := &encodedList{info: ListInfo{Name: name, Version: version, Size: len(uniq), Input: st, Encoded: true}, points: points}
	el.info.Seconds = time.Since(start).Seconds()
	s.mu.Lock()
	s.lists[name] = el
	s.mu.Unlock()
	return el.info, nil
}

// Lists returns the installed lists, sorted by name.
func (s *ListServer) Lists() []ListInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]ListInfo, 0, len(s.lists))
	for _, l := range s.lists {
		out = append(out, l.info)
	}
	slices.SortFunc(out, func(a, b ListInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// ListServeStats is what the provider learns from one check: the list
// asked about, how many IDs the bank checked, and the number of matches
// the bank reports (not verifiable by the provider).
type ListServeStats struct {
	List            string  `json:"list"`
	Version         string  `json:"version"`
	Checked         int     `json:"checked"`
	ReportedMatches int     `json:"reported_matches"`
	Seconds         float64 `json:"seconds"`
}

// Serve answers one list check from a bank over conn.
func (s *ListServer) Serve(ctx context.Context, conn Conn, cfg Config) (*ListServeStats, error) {
	start := time.Now()
	cfg.Protocol = ""
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New("psi: list serve: nil connection")
	}
	l := newLink(conn, cfg.Session)
	stats, err := s.serve(ctx, l, cfg)
	if err != nil {
		err = fmt.Errorf("psi: list serve: %w", err)
		l.abort(ctx, err)
		return nil, err
	}
	stats.Seconds = time.Since(start).Seconds()
	return stats, nil
}

func (s *ListServer) serve(ctx context.Context, l *link, cfg Config) (*ListServeStats, error) {
	m, err := l.recvKind(ctx, KindHello, 0)
	if err != nil {
		return nil, err
	}
	var bank hello
	if err := bank.unmarshal(m.Payload); err != nil {
		return nil, fmt.Errorf("bank hello: %w", err)
	}
	if bank.Protocol != protocolList || bank.Role != roleBank {
		return nil, fmt.Errorf("peer is not a list-check bank (protocol %q, role %d)", bank.Protocol, bank.Role)
	}
	if int(bank.Chunk) != cfg.ChunkSize {
		return nil, fmt.Errorf("bank chunk size %d differs from ours %d", bank.Chunk, cfg.ChunkSize)
	}
	s.mu.RLock()
	el := s.lists[bank.Name]
	s.mu.RUnlock()
	if el == nil {
		return nil, fmt.Errorf("unknown list %q", bank.Name)
	}
	ours := hello{Protocol: protocolList, Role: roleLister, Size: uint64(el.info.Size), Chunk: uint32(cfg.ChunkSize), Name: el.info.Name, Version: el.info.Version}
	if err := l.send(ctx, KindHello, 0, true, ours.marshal()); err != nil {
		return nil, err
	}
	key := &ecdhKey{dst: listDST(bank.Name), scalar: s.key, workers: cfg.Workers}
	in := &streamIn{kind: KindPoints, total: int(bank.Size), itemLen: pointLen, chunk: cfg.ChunkSize}
	err = key.reblindStream(ctx, recvStream(l, in), func(c *chunk) error {
		return l.send(ctx, KindReply, c.seq, c.final, c.out)
	})
	if err != nil {
		return nil, err
	}
	next := ownChunks(el.info.Size, cfg.ChunkSize)
	for {
		ch, _ := next(ctx)
		if ch == nil {
			break
		}
		if err := l.send(ctx, KindList, ch.seq, ch.final, el.points[ch.lo*pointLen:ch.hi*pointLen]); err != nil {
			return nil, err
		}
	}
	done, err := l.recvKind(ctx, KindDone, 0)
	if err != nil {
		return nil, err
	}
	if len(done.Payload) != 8 {
		return nil, fmt.Errorf("%w: done message of %d bytes, want 8", ErrMalformed, len(done.Payload))
	}
	reported := binary.BigEndian.Uint64(done.Payload)
	if reported > bank.Size {
		return nil, fmt.Errorf("bank reports %d matches for %d IDs", reported, bank.Size)
	}
	return &ListServeStats{List: bank.Name, Version: el.info.Version, Checked: int(bank.Size), ReportedMatches: int(reported)}, nil
}

// ListCheck is the bank's result of a list check.
type ListCheck struct {
	List        string     `json:"list"`
	ListVersion string     `json:"list_version"`
	ListSize    int        `json:"list_size"`
	Input       InputStats `json:"input"`
	Matches     []string   `json:"-"` // the bank's IDs that are on the list, sorted
	MatchCount  int        `json:"matches"`
	Seconds     float64    `json:"seconds"`
}

// CheckList is the bank side of a list check: it learns which of ids are
// on the provider's list named list; the provider learns only len(ids)
// and the match count this function reports to it.
func CheckList(ctx context.Context, conn Conn, list string, ids []string, cfg Config) (*ListCheck, error) {
	start := time.Now()
	cfg.Protocol = ""
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New("psi: check list: nil connection")
	}
	if list == "" || len(list) > 255 {
		return nil, fmt.Errorf("psi: check list: list name must be 1..255 bytes, got %d", len(list))
	}
	uniq, st, err := uniqueIDs(ids)
	if err != nil {
		return nil, err
	}
	l := newLink(conn, cfg.Session)
	res, err := checkList(ctx, l, list, uniq, cfg)
	if err != nil {
		err = fmt.Errorf("psi: check list %q: %w", list, err)
		l.abort(ctx, err)
		return nil, err
	}
	res.Input = st
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func checkList(ctx context.Context, l *link, list string, uniq []string, cfg Config) (*ListCheck, error) {
	ours := hello{Protocol: protocolList, Role: roleBank, Size: uint64(len(uniq)), Chunk: uint32(cfg.ChunkSize), Name: list}
	srv, err := l.exchangeHello(ctx, ours, roleLister)
	if err != nil {
		return nil, err
	}
	if srv.Name != list {
		return nil, fmt.Errorf("provider answered for list %q", srv.Name)
	}
	perm, err := randomPerm(len(uniq))
	if err != nil {
		return nil, err
	}
	// We send enc(2r·H(x)), the provider returns enc(2k·2r·H(x)) and its
	// list holds enc(2k·H(y)); unblinding with u = 1/(4r) gives
	// enc(2u·4kr·H(x)) = enc(2k·H(x)).
	key := &ecdhKey{dst: listDST(list), scalar: randomScalar(), workers: cfg.Workers}
	unblind := &ecdhKey{dst: key.dst, workers: cfg.Workers}
	var four r255p.Scalar
	four.SetUint64(4)
	unblind.scalar.Mul(&four, &key.scalar)
	unblind.scalar.Inverse(&unblind.scalar)
	table := make(map[[pointLen]byte]uint32, len(uniq))

	g := newGroup(ctx)
	g.Go(func(ctx context.Context) error {
		return key.streamOwnPoints(ctx, l, KindPoints, uniq, perm, cfg.ChunkSize)
	})
	g.Go(func(ctx context.Context) error {
		in := &streamIn{kind: KindReply, total: len(uniq), itemLen: pointLen, chunk: cfg.ChunkSize}
		return unblind.reblindStream(ctx, recvStream(l, in), func(c *chunk) error {
			for i := 0; i < c.hi-c.lo; i++ {
				var kb [pointLen]byte
				copy(kb[:], c.out[i*pointLen:])
				if _, dup := table[kb]; dup {
					return fmt.Errorf("%w: reply %d repeats an earlier point", ErrBadPoint, c.lo+i)
				}
				table[kb] = perm[c.lo+i]
			}
			return nil
		})
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var matches []string
	in := &streamIn{kind: KindList, total: int(srv.Size), itemLen: pointLen, chunk: cfg.ChunkSize}
	next := recvStream(l, in)
	for {
		c, err := next(ctx)
		if err != nil {
			return nil, fmt.Errorf("list stream: %w", err)
		}
		if c == nil {
			break
		}
		for i := 0; i*pointLen < len(c.in); i++ {
			var kb [pointLen]byte
			copy(kb[:], c.in[i*pointLen:])
			if idx, ok := table[kb]; ok {
				matches = append(matches, uniq[idx])
				delete(table, kb) // a repeated list entry must not count twice
			}
		}
	}
	slices.Sort(matches)
	done := binary.BigEndian.AppendUint64(nil, uint64(len(matches)))
	if err := l.send(ctx, KindDone, 0, true, done); err != nil {
		return nil, err
	}
	return &ListCheck{List: list, ListVersion: srv.Version, ListSize: int(srv.Size), Matches: matches, MatchCount: len(matches)}, nil
}
