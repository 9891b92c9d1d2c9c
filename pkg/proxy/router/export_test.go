package router

// Fields is the route configuration's allow-list, for the tests in
// router_test.
var Fields = fields
