package ca

// ReviewResult is reviewResult for the external tests.
var ReviewResult = reviewResult
