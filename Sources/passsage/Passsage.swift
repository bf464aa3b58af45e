import ArgumentParser
import CommandLineSupport

@main
struct Passsage: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "passsage",
        abstract: "A caching, TLS-intercepting HTTP(S) forward proxy for CI fleets.",
        discussion: "With no subcommand, passsage runs `serve`; see `passsage serve --help` for its options.",
        version: version,
        subcommands: [ServeCommand.self, CheckConfigCommand.self],
        defaultSubcommand: ServeCommand.self
    )

    static func main() async {
        await runReportingErrors(program: "passsage")
    }
}
