import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct Passsage: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "passsage",
        abstract: "A caching, TLS-intercepting HTTP(S) forward proxy for CI fleets.",
        discussion: "With no subcommand, passsage runs `serve`; see `passsage serve --help` for its options.",
        version: version,
        subcommands: [ServeCommand.self],
        defaultSubcommand: ServeCommand.self
    )

    /// Like ArgumentParser's `main`, but every usage error is one line on stderr and exit code 2.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as UsageError {
            fail("\(error)", code: 2)
        } catch {
            switch exitCode(for: error) {
            case .success:
                exit(withError: error)
            case .validationFailure:
                fail(message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments", code: 2)
            default:
                fail(message(for: error).isEmpty ? "\(error)" : message(for: error), code: 1)
            }
        }
    }

    private static func fail(_ message: String, code: Int32) -> Never {
        let line = Array("passsage: error: \(message)\n".utf8)
        #if canImport(Darwin)
        _ = line.withUnsafeBytes { Darwin.write(2, $0.baseAddress, $0.count) }
        Darwin.exit(code)
        #else
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
        Glibc.exit(code)
        #endif
    }
}
