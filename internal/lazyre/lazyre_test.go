package lazyre

import (
	"sync"
	"testing"
)

func TestNew(t *testing.T) {
	re := New(`^[a-z]{1,3}$`)
	var wg sync.WaitGroup
	got := make(chan bool, 8)
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); got <- re().MatchString("abc") && !re().MatchString("abcd") }()
	}
	wg.Wait()
	close(got)
	for ok := range got {
		if !ok {
			t.Fatal("match")
		}
	}
	if first, again := re(), re(); first != again {
		t.Error("compiled twice")
	}
	bad := New(`(`)
	defer func() {
		if recover() == nil {
			t.Error("invalid expression: no panic")
		}
	}()
	bad()
}
