@testable import ForwardProxy
import HTTPRules
import NIOCore
import NIOHTTP1
import Testing

/// `ProxyConnectionStateMachine` as a plain value: no channel, no I/O.
@Suite("Proxy connection state machine")
struct ConnectionStateMachineTests {
    final class FakeExchange: ResponseExchange {
        var acceptsRequestBody = true
        func writeBody(_ buffer: ByteBuffer) {}
        func end() {}
        func pauseResponse() {}
        func resumeResponse() {}
        func cancel() {}
    }

    typealias Machine = ProxyConnectionStateMachine

    static let head = HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://a/"))
    static let end = HTTPServerRequestPart.end(nil)

    static func record(ended: Bool = true, keepAlive: Bool = true) -> ProxyRequestRecord {
        ProxyRequestRecord(method: "GET", target: "http://a/", requestID: "r", keepAlive: keepAlive, started: .now(),
                           requestEnded: ended)
    }

    /// Drains the pump, returning what it handed out and how it stopped.
    static func pump(_ machine: inout Machine, writable: Bool = true) -> (handled: Int, last: String) {
        var handled = 0
        while true {
            switch machine.nextPumpStep(outputWritable: writable) {
            case .handle: handled += 1
            case .close: return (handled, "close")
            case .resumeReads: return (handled, "resume")
            case .pauseReads: return (handled, "pause")
            case .wait: return (handled, "wait")
            }
        }
    }

    @Test func anIdleConnectionHandlesAHeadAtOnceUnlessOutputIsBackedUp() {
        var machine = Machine(pipelinedRequestLimit: 4)
        guard case .handle = machine.arrived(.part(Self.head), outputWritable: true) else {
            Issue.record("an idle connection with room to write handles a head now")
            return
        }
        guard case .queued = machine.arrived(.part(Self.head), outputWritable: false) else {
            Issue.record("backed-up output: the head waits")
            return
        }
        #expect(machine.readsPaused && machine.queuedRequests == 1)
    }

    @Test func pipelinedRequestsWaitForTheOneInFlightAndTheQueueIsCapped() {
        var machine = Machine(pipelinedRequestLimit: 2)
        let exchange = FakeExchange()
        machine.startForwarding(exchange, record: Self.record())
        // The request in flight has ended: what follows is pipelined.
        var arrivals: [String] = []
        for _ in 0..<4 {
            for part in [Self.head, Self.end] {
                switch machine.arrived(.part(part), outputWritable: true) {
                case .handle: arrivals.append("handle")
                case .queued: arrivals.append("queued")
                case .overflowed: arrivals.append("overflowed")
                case .dropped: arrivals.append("dropped")
                }
            }
        }
        #expect(arrivals == ["queued", "queued", "queued", "queued", "overflowed", "dropped", "dropped", "dropped"])
        #expect(machine.queuedRequests == 2 && machine.queue.count == 4 && machine.queueOverflowed)
        let waiting = Self.pump(&machine)
        #expect(waiting.last == "wait", "nothing starts while the request in flight is not done")

        // The response ends: the queued requests are handed out one at a time.
        guard case .idle(.pump(let awaitNextHead)) = machine.responseFinished(close: false) else {
            Issue.record("keep-alive: the connection becomes idle")
            return
        }
        #expect(!awaitNextHead, "a complete head is queued: the head deadline does not start over")
        guard case .handle(.part(.head)) = machine.nextPumpStep(outputWritable: true) else {
            Issue.record("the first queued head comes out")
            return
        }
        machine.startForwarding(FakeExchange(), record: Self.record(ended: false))
        guard case .handle(.part(.end)) = machine.nextPumpStep(outputWritable: true) else {
            Issue.record("its end follows")
            return
        }
        _ = machine.requestEnded()
        let stillWaiting = Self.pump(&machine)
        #expect(stillWaiting.last == "wait")
        _ = machine.responseFinished(close: false)
        let drained = Self.pump(&machine)
        #expect(drained == (2, "close"), "after an overflow the connection closes once the queue is answered")
    }

    @Test func readsAreHeldWhilePausedAndIssuedOnResume() {
        var machine = Machine(pipelinedRequestLimit: 4)
        let passed = machine.readRequested()
        #expect(passed)
        machine.pauseReads()
        let held = machine.readRequested()
        #expect(!held, "held")
        let resumed = machine.resumeReads()
        let again = machine.resumeReads()
        #expect(resumed == (true, true), "the held read is issued once")
        #expect(again == (false, false))
        machine.pauseReads()
        let released = machine.releaseHeldRead()
        #expect(!released, "nothing was held")
    }

    @Test func aRequestBodyIsReadOnlyAsFastAsTheUpstreamTakesIt() {
        var machine = Machine(pipelinedRequestLimit: 4)
        let exchange = FakeExchange()
        machine.startForwarding(exchange, record: Self.record(ended: false))
        exchange.acceptsRequestBody = false
        #expect(!machine.wantsInput(outputWritable: true))
        #expect(machine.acceptsInput(outputWritable: true), "the body of the request in flight is still taken")
        exchange.acceptsRequestBody = true
        #expect(machine.wantsInput(outputWritable: true))
        #expect(machine.bodyDestination() === exchange)
    }

    @Test func theOriginsHeadIsHeldUntilItsFirstBytesAndAFailureBeforeThemIsAnswered() {
        var machine = Machine(pipelinedRequestLimit: 4)
        let exchange = FakeExchange()
        let stranger = FakeExchange()
        machine.startForwarding(exchange, record: Self.record())
        let response = HTTPResponseHead(version: .http1_1, status: .ok)
        machine.originHead(exchange, status: .ok) { _ in response }
        let ignored = machine.originBody(stranger, bytes: 1)
        #expect(ignored == nil, "events of another exchange are ignored")
        guard case .respond = machine.originFailed(exchange) else {
            Issue.record("nothing reached the client: answer with an error")
            return
        }
        let first = machine.originBody(exchange, bytes: 10)
        let second = machine.originBody(exchange, bytes: 10)
        #expect(first == .some(.some(response)), "the held head goes first")
        #expect(second == .some(nil))
        guard case .abort(let record) = machine.originFailed(exchange) else {
            Issue.record("bytes reached the client: abort")
            return
        }
        #expect(record.bodyBytes == 20)
        #expect(machine.headDisposition() == .ignore, "closing: further input is dropped")
    }

    @Test func aClientClosingMidExchangeCancelsItAndDropsTheQueue() {
        var machine = Machine(pipelinedRequestLimit: 4)
        let exchange = FakeExchange()
        machine.startForwarding(exchange, record: Self.record())
        _ = machine.arrived(.part(Self.head), outputWritable: true)
        guard case .cancel(let cancelled, _) = machine.clientClosed() else {
            Issue.record("the exchange in flight is cancelled")
            return
        }
        #expect(cancelled === exchange)
        #expect(machine.queue.isEmpty)
        guard case .none = machine.clientClosed() else {
            Issue.record("nothing left to cancel")
            return
        }
    }

    @Test func aLookupHoldsInputUntilItResolvesThenTheQueuedPartsFlow() {
        var machine = Machine(pipelinedRequestLimit: 4)
        let lookup = machine.startLookup(Self.record(ended: false))
        #expect(machine.readsPaused, "reads are held while the source decides")
        #expect(!machine.wantsInput(outputWritable: true))
        guard case .queued = machine.arrived(.part(Self.end), outputWritable: true),
              case .queued = machine.arrived(.part(Self.head), outputWritable: true) else {
            Issue.record("input during a lookup waits in the queue")
            return
        }
        #expect(Self.pump(&machine).handled == 0, "nothing is handed out while looking up")
        let record = machine.lookupResolved(lookup)
        #expect(record?.target == "http://a/")
        // The handler performs the plan: here, an exchange starts.
        machine.startForwarding(FakeExchange(), record: record!)
        guard case .handle(.part(.end)) = machine.nextPumpStep(outputWritable: true),
              case .endRequestBody = machine.requestEnded() else {
            Issue.record("the request's end flows to the exchange")
            return
        }
        guard case .wait = machine.nextPumpStep(outputWritable: true) else {
            Issue.record("the next head waits for the response")
            return
        }
    }

    @Test func aLookupThatCompletesAfterTheClientLeftIsDropped() {
        var machine = Machine(pipelinedRequestLimit: 4)
        let lookup = machine.startLookup(Self.record())
        guard case .abandonLookup(let record) = machine.clientClosed() else {
            Issue.record("the lookup's request is logged as abandoned")
            return
        }
        #expect(record.requestID == "r")
        #expect(machine.lookupResolved(lookup) == nil, "the late plan is not performed")
        #expect(machine.headDisposition() == .ignore)
    }

    @Test func aStaleLookupIdentityIsNotTakenForTheCurrentOne() {
        var machine = Machine(pipelinedRequestLimit: 4)
        let first = machine.startLookup(Self.record())
        #expect(machine.lookupResolved(first) != nil)
        let second = machine.startLookup(Self.record())
        #expect(first != second)
        #expect(machine.lookupResolved(first) == nil)
        #expect(machine.lookupResolved(second) != nil)
    }

    @Test func quiescingDuringALookupClosesWhenItsResponseEndsAndTheIdleTimeoutLeavesItAlone() {
        var machine = Machine(pipelinedRequestLimit: 4)
        let lookup = machine.startLookup(Self.record())
        let closesNow = machine.quiesce()
        #expect(!closesNow, "busy: it closes after its response")
        guard case .none = machine.idleTimeout(outputWritable: true) else {
            Issue.record("a lookup has its own deadline")
            return
        }
        let record = machine.lookupResolved(lookup)!
        machine.startForwarding(FakeExchange(), record: record)
        guard case .closeAfterFlush = machine.responseFinished(close: false) else {
            Issue.record("quiescing: closed once the response ended")
            return
        }
    }

    @Test func quiescingClosesAnIdleConnectionNowAndABusyOneWhenItsResponseEnds() {
        var idle = Machine(pipelinedRequestLimit: 4)
        let closesNow = idle.quiesce()
        #expect(closesNow)

        var busy = Machine(pipelinedRequestLimit: 4)
        busy.startForwarding(FakeExchange(), record: Self.record())
        let busyClosesNow = busy.quiesce()
        #expect(!busyClosesNow)
        guard case .closeAfterFlush = busy.responseFinished(close: false) else {
            Issue.record("the response ends, then the connection closes")
            return
        }
    }

    @Test func aLocalAnswerBeforeTheBodyEndsDiscardsTheRestThenServesTheNextRequest() {
        var machine = Machine(pipelinedRequestLimit: 4)
        guard case .discardBody = machine.localResponseWritten(Self.record(ended: false), close: false) else {
            Issue.record("keep-alive: drop the rest of the body")
            return
        }
        #expect(machine.bodyDestination() == nil)
        guard case .becomeIdle = machine.requestEnded() else {
            Issue.record("the discarded body ended")
            return
        }
        guard case .closeAfterFlush = machine.localResponseWritten(Self.record(ended: false), close: true) else {
            Issue.record("close: read no more")
            return
        }
    }

    @Test func protocolErrorsAlwaysEndTheConnection() {
        var idle = Machine(pipelinedRequestLimit: 4)
        guard case .respondUnparsed = idle.protocolError() else {
            Issue.record("idle: answer 400 for a head that never arrived whole")
            return
        }
        var streaming = Machine(pipelinedRequestLimit: 4)
        let exchange = FakeExchange()
        streaming.startForwarding(exchange, record: Self.record(ended: false))
        streaming.originHead(exchange, status: .ok) { _ in HTTPResponseHead(version: .http1_1, status: .ok) }
        _ = streaming.originBody(exchange, bytes: 1)
        guard case .cancelAndAbort = streaming.protocolError() else {
            Issue.record("bytes reached the client: cancel and abort")
            return
        }
        var connect = Machine(pipelinedRequestLimit: 4)
        connect.awaitConnectEnd(try! Authority.parse("a:443", defaultPort: nil), record: Self.record(ended: false))
        guard case .respond(let record) = connect.protocolError(), record.requestEnded else {
            Issue.record("CONNECT: answer, reading no more")
            return
        }
    }

    @Test func theIdleTimeoutClosesUnlessASlowOriginIsServingAReadingClient() {
        var waiting = Machine(pipelinedRequestLimit: 4)
        guard case .close = waiting.idleTimeout(outputWritable: true) else {
            Issue.record("idle: close")
            return
        }
        var reading = Machine(pipelinedRequestLimit: 4)
        reading.startForwarding(FakeExchange(), record: Self.record())
        guard case .none = reading.idleTimeout(outputWritable: true) else {
            Issue.record("a slow origin has its own timeouts")
            return
        }
        guard case .cancelAndClose = reading.idleTimeout(outputWritable: false) else {
            Issue.record("a client that stopped reading lets the origin go")
            return
        }
    }
}
