package cri

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// State persists the delivered positions of several tailers in one JSON file,
// replaced atomically (write then rename) so a collector killed at any moment leaves
// either the old or the new positions, never a torn file.
type State struct {
	Path string

	mu      sync.Mutex
	tailers map[string]*Tailer
	saved   map[string]Position
}

// Load reads the saved positions (none when the file does not exist).
func (s *State) Load() (map[string]Position, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Position{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tail state: %w", err)
	}
	var m map[string]Position
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode tail state: %w", err)
	}
	s.mu.Lock()
	s.saved = m
	s.mu.Unlock()
	return m, nil
}

// Track adds a tailer whose position is saved under name.
func (s *State) Track(name string, t *Tailer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tailers == nil {
		s.tailers = map[string]*Tailer{}
	}
	s.tailers[name] = t
}

// Save writes the tailers' positions if any has moved since the last save.
func (s *State) Save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := make(map[string]Position, len(s.tailers))
	changed := false
	for name, t := range s.tailers {
		p := t.Acked()
		cur[name] = p
		if s.saved[name] != p {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("encode tail state: %w", err)
	}
	tmp := s.Path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o755); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write tail state: %w", err)
	}
	if err := os.Rename(tmp, s.Path); err != nil {
		return fmt.Errorf("replace tail state: %w", err)
	}
	s.saved = cur
	return nil
}
