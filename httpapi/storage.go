package httpapi

// Storage is what the storage API needs from a node.
type Storage interface{}

func (s *Server) storageRoutes() {}
