// Package oip is the wire codec of the Open Inference Protocol (KServe "V2")
// REST API: it decodes inference requests into runtime.Tensors and appends
// responses, errors and metadata documents to byte slices. It knows nothing
// of HTTP: the gateway hands it a body and the value of the
// Inference-Header-Content-Length header, and writes what it returns.
//
// # Decoding
//
// A Decoder is a streaming, schema-directed JSON parser: it walks the request
// once and converts every number of a tensor's "data" straight into
// Tensor.Data, little-endian, in the declared datatype. It builds no document
// tree (a tree of a 10 MB body of numbers costs hundreds of megabytes), it
// never keeps a reference to the body, and a warm Decoder and InferRequest
// decode a request without allocating (BYTES tensors excepted: each BYTES
// tensor costs one allocation for its strings).
//
// The decoder is strict where a lenient one would hand a model garbage:
//   - the JSON must be well formed (RFC 8259): NaN, Infinity, leading zeros,
//     unescaped control characters in strings and trailing data are errors;
//   - numbers must fit the declared datatype: integers must be integral and in
//     range (a literal with a fraction or exponent is accepted when its value
//     is an integer no larger than 2^53 in magnitude); floats are rounded
//     to nearest, ties to even, values that overflow FP16, FP32 or FP64 are
//     errors and values that underflow become zero or subnormal; BOOL takes
//     only true and false, BYTES only strings;
//   - "data" is either flat (one array of exactly prod(shape) elements,
//     row-major) or nested exactly as the shape says (rank(shape) levels of
//     arrays, each as long as its dimension). Anything in between is an error,
//     so a client that mixes up rows and columns hears about it;
//   - every input has a name (valid UTF-8, at most MaxNameLen bytes), a shape
//     of at most MaxRank non-negative dimensions whose product is at most
//     MaxElements, a datatype and either "data" or, with the binary tensor
//     data extension, parameters.binary_data_size;
//   - unknown fields are skipped (but must be valid JSON nested at most 64
//     deep), known fields given twice are errors.
//
// What the decoder does not check is the model: unknown, duplicated or
// missing inputs, datatypes and shapes are runtime.Signature.Bind's job, and
// requested outputs are checked by CheckOutputs.
//
// # Binary tensor data extension
//
// When the Inference-Header-Content-Length header is present, the body is a
// JSON header of that many bytes followed by the raw bytes of the inputs that
// carry parameters.binary_data_size, in the order of the inputs in the JSON.
// Numeric data is copied as is (little-endian, row-major), so binary data is
// the one way to send NaN or infinite values; BOOL bytes must be 0 or 1; BYTES
// elements are a 4-byte little-endian length followed by the bytes. Bytes
// after the JSON that no input claims are an error.
//
// # Encoding
//
// AppendInferResponse and AppendError append to a caller's buffer and do not
// allocate once it is large enough (server and model metadata are the
// gateway's, in gateway/meta.go). JSON has no NaN or infinity: such values are written as
// null (clients that need them ask for binary outputs). Strings are escaped
// and invalid UTF-8 is replaced by U+FFFD.
//
// # Errors
//
// Every decoding error is an *Error carrying the HTTP status to answer with
// (400 for anything wrong with the request) and a message for the person who
// sent it, naming the input and the element at fault.
package oip
