import Testing

extension Tag {
    /// Tests that move hundreds of MiB or flood a server for seconds. `scripts/test` runs them in
    /// a second pass of their own: next to them the short tests' timeouts measure CPU starvation
    /// on two cores, not the code.
    @Tag public static var heavy: Tag
}
