// Package onnxpb holds the Go types of the ONNX protobuf schema (ModelProto,
// GraphProto, NodeProto, TensorProto, ...), generated from onnx.proto.
//
// The schema is the ONNX-ML variant shipped by Debian's libonnx-dev 1.12
// (/usr/include/onnx/onnx.proto, which includes the Map, Sequence and
// Optional types), copied here so that regenerating depends on neither the
// Debian path nor the onnx repository. The generated onnx.pb.go is checked in:
// building modelgate needs neither protoc nor libonnx-dev.
//
// To regenerate, install protoc (Debian: protobuf-compiler) and
// protoc-gen-go at the version of google.golang.org/protobuf in go.mod:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go generate ./internal/onnxpb
//
// The proto package is "onnx", so the messages register under their ONNX
// names (onnx.ModelProto); no other Go package in the binary may register
// onnx.proto too.
package onnxpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/modelgate/modelgate/internal/onnxpb onnx.proto
