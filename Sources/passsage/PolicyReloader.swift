import CachePolicy
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the policy file on SIGHUP: the new rules replace the old ones at once for every
/// request after; a file that does not parse leaves the old rules in force and says why.
struct PolicyReloader: Service {
    let resolver: ReloadablePolicyResolver
    let settings: Settings
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            reload()
        }
    }

    func reload() {
        guard let file = settings.policyFile else {
            logger.notice("SIGHUP: no --policy-file to reload")
            return
        }
        do {
            let rules = try settings.loadPolicies()
            resolver.replace(with: rules)
            logger.notice("SIGHUP: policies reloaded from \(file): \(rules.rules.count) rules")
        } catch {
            logger.error("SIGHUP: the old policies stay in force: \(error)")
        }
    }
}
