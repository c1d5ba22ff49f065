// The relay's sleep between passes: cut short by a NOTIFY on the table's channel (one held connection).
import type { Connections, PoolClientLike } from './connections.js'

export function createWakeup(options: {
  connections: Connections
  /** The LISTEN statement; none: sleep for the poll interval only. */
  listen: string | undefined
  report(error: unknown, what: string): void
}) {
  const { connections, listen, report } = options
  let wake: (() => void) | undefined
  let notified = false
  let listener: PoolClientLike | undefined

  const onNotification = () => {
    notified = true
    wake?.()
  }
  const onListenerError = (error: unknown) => {
    report(error, 'LISTEN connection')
    drop(error as Error)
  }

  function drop(error?: Error): void {
    const held = listener
    listener = undefined
    if (!held) return
    held.removeListener?.('notification', onNotification)
    held.removeListener?.('error', onListenerError)
    held.release(error ?? true)
  }

  return {
    /** Holds one connection on LISTEN; a failure is reported and tried again at the next pass. */
    async ensure(isRunning: () => boolean): Promise<void> {
      if (listen === undefined || listener || !isRunning()) return
      let client: PoolClientLike | undefined
      try {
        client = await connections.connect()
        client.on?.('notification', onNotification)
        client.on?.('error', onListenerError)
        listener = client
        await connections.bound(client.query(listen), 'LISTEN')
        if (!isRunning()) drop()
      } catch (error) {
        report(error, 'LISTEN')
        if (listener === client) drop(error as Error)
      }
    },

    /** Resolves after `ms`, at a notification, or at `wake()`; at once if one came meanwhile. */
    sleep(ms: number): Promise<void> {
      if (notified) {
        notified = false
        return Promise.resolve()
      }
      return new Promise((resolve) => {
        const timer = setTimeout(done, ms)
        function done() {
          clearTimeout(timer)
          wake = undefined
          notified = false
          resolve()
        }
        wake = done
      })
    },

    /** Ends the sleep under way, or the next one at once. */
    wake(): void {
      if (wake) wake()
      else notified = true
    },
    close: () => drop(),
  }
}
