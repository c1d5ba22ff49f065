/** One page's event stream, as the live hub sees it. */
export interface LiveClient {
  send(chunk: string): void
  end(): void
}

export interface EventStreamHooks {
  /** The stream has started; `client` may already be ended by then. */
  open(client: LiveClient): void
  /** The stream ended (the client left, fell behind, or the hub ended it); called once. */
  ended(client: LiveClient): void
}

/** A client whose stream has this many unread messages queued is dropped (a stalled connection). */
const MAX_BACKLOG = 500
const encoder = new TextEncoder()

/** A `text/event-stream` response whose client the hooks are told about as it opens and ends. */
export function createEventStream(headers: Record<string, string>, hooks: EventStreamHooks): Response {
  let client: LiveClient | undefined
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      let ended = false
      const current: LiveClient = {
        send(chunk) {
          if (ended) return
          try {
            controller.enqueue(encoder.encode(chunk))
          } catch {
            current.end()
            return
          }
          if ((controller.desiredSize ?? 0) < -MAX_BACKLOG) current.end()
        },
        end() {
          if (ended) return
          ended = true
          hooks.ended(current)
          try {
            controller.close()
          } catch {
            // Already cancelled by the client.
          }
        },
      }
      client = current
      hooks.open(current)
    },
    cancel() {
      client?.end()
    },
  })
  return new Response(stream, { status: 200, headers })
}
