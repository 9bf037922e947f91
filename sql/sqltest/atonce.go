package sqltest

import "sync"

// AtOnce runs fn(0), …, fn(n-1) in goroutines released together, as
// requests arriving at the same moment on several instances, and returns
// once all have: the races a test of a conditional write needs.
func AtOnce(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}
