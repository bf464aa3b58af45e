import DownloadEngine
import Testing

@Suite("Worker budget")
struct WorkerBudgetTests {
    @Test func slotsAreSharedInOrderAndCancellationLeavesNoHole() async throws {
        let budget = WorkerBudget(capacity: 2)
        try await budget.acquire()
        try await budget.acquire()
        #expect(budget.inUse == 2)

        let cancelled = Task { try await budget.acquire() }
        let waiting = Task { try await budget.acquire() }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        budget.release()
        try await waiting.value
        #expect(budget.inUse == 2)
        budget.release()
        budget.release()
        #expect(budget.inUse == 0)
        budget.release()
        #expect(budget.inUse == 0, "an extra release does not grow the budget")
    }
}
