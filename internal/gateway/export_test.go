package gateway

// PrefixLen is how many bytes the HTTP server had read past the handshake for s.
// Valid only inside Attach (before the gateway consumes them), so that tests can
// tell that they exercised the prefix path.
func PrefixLen(s *Socket) int {
	if s.prefix == nil {
		return 0
	}
	return len(*s.prefix)
}

// FdOf is the file descriptor the gateway polls for s.
func FdOf(s *Socket) int { return s.fd }

// Writes is how many write(2) calls srv's sockets made at once (not the flusher's).
func Writes(srv *Server) int64 { return srv.writes.Load() }
