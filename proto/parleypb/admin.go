package parleypb

// NotInfluenceReceiveTimeout keeps an admin inspection from resetting a grain's
// idle timer: looking at a grain must not keep it active.
func (*AdminStateRequest) NotInfluenceReceiveTimeout() {}
