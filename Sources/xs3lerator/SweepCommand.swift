import StorageSetup
import ArgumentParser
import CommandLineSupport
import DataPlane
import Logging
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// `xs3lerator sweep`: lists (or with `--delete`, deletes) the chunks no manifest references.
struct SweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "List the stored chunks no manifest references; delete them with --delete.",
        discussion: """
            Reads every manifest first, then lists the chunks, so a download finishing meanwhile is safe: unreferenced chunks
            younger than --grace are kept. Run it against the same storage options as the service. Dry run by default.
            """
    )

    @OptionGroup var storage: StorageArguments

    @Flag(help: "Delete the unreferenced chunks (default: only list them).")
    var delete = false

    @Option(help: "Keep unreferenced chunks younger than this, e.g. 24h; at least twice a download's longest time. [default 24h]")
    var grace: DurationValue?

    @Flag(help: "Print the keys of the unreferenced chunks.")
    var list = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let env = EnvironmentResolver(environment: environment)
        LoggingSetup.bootstrap(verbose: false)
        let logger = Logger(label: "xs3lerator.sweep")
        let grace = grace?.duration ?? .seconds(24 * 3600)
        guard grace >= .seconds(60) else { throw UsageError("invalid value for --grace: must be at least 1 minute") }
        let options = try storage.options(env, environment: environment, passthrough: false)
        if options.bucket == nil || options.elasticsearchURL == nil {
            // Sweeping a data directory that is not there would create an empty one and report nothing.
            var status = stat()
            guard stat(options.dataDirectory, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
                throw UsageError("invalid value '\(options.dataDirectory)' for --data-dir: no such directory")
            }
        }
        let setup = try await StorageSetup.open(options, logger: logger)
        guard let stores = setup.stores else { throw UsageError("no storage configured") }
        let report: ChunkSweep.Report
        do {
            report = try await ChunkSweep.run(storage: stores, grace: grace, delete: delete, now: Int64(time(nil)), logger: logger)
        } catch {
            await setup.close()
            throw error
        }
        await setup.close()
        if list { for object in report.unreferenced { print(object.key) } }
        let bytes = report.unreferenced.reduce(Int64(0)) { $0 + $1.size }
        print("manifests \(report.manifests), chunks referenced \(report.referenced), chunks stored \(report.listed), "
              + "unreferenced \(report.unreferenced.count) (\(bytes) bytes), kept as younger than \(grace) \(report.young), "
              + (delete ? "deleted \(report.deleted), failed \(report.failures.count)" : "deleted 0 (dry run; --delete deletes)"))
        for failure in report.failures { print("failed: \(failure.key): \(failure.code): \(failure.message)") }
        if report.unreadableManifests > 0 { print("unreadable manifests: \(report.unreadableManifests)") }
        if !report.failures.isEmpty { throw ExitCode(1) }
    }
}
