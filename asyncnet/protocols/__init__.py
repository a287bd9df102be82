"""Sans-IO protocol code: parsers and framers that never touch a socket."""
