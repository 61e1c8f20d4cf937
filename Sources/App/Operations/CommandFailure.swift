/// A command's failure: printed as one line, and the process exits non-zero.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
}
