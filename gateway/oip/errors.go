package oip

import (
	"net/http"
	"strconv"
)

// Error is a request the codec refuses. Status is the HTTP status to answer
// with; Msg says what is wrong in words the client can act on. Every error
// Decode returns is an *Error.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// BodyTooLarge is the error the HTTP layer answers when a request body
// exceeds its limit (413).
func BodyTooLarge(limit int) *Error {
	return &Error{
		Status: http.StatusRequestEntityTooLarge,
		Msg:    "request body is larger than the " + strconv.Itoa(limit) + "-byte limit: send fewer rows per request",
	}
}

// badRequest is a 400 with the given message.
func badRequest(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: msg}
}
