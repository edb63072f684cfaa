package ch.ungleich.uncloud.hook.agent;

import java.util.LinkedHashSet;
import java.util.Set;
import java.util.function.LongSupplier;

/**
 * The agent's one worker (kube-proxy's bounded-frequency runner): triggers only mark what is dirty
 * (a domain, or the whole host); one thread applies, never more often than {@code minIntervalMs},
 * after a short settle so that a burst (the dozens of monitor lines of one {@code nft flush ruleset},
 * 200 metadata changes) becomes one pass; a failed pass is retried with exponential backoff; with
 * nothing marked, a full resync every {@code resyncMs} is the backstop for missed events. Idle, the
 * thread waits on a monitor: no CPU.
 */
public final class Runner {
  /** One pass. Throwing marks the same work dirty again and backs off. */
  public interface Sync {
    /**
     * @param all the whole host (then {@code domains} is empty)
     * @param reread with {@code all}: read every domain from libvirt again (after a connect, the
     *     periodic resync); else the domains the agent knows are enough (a lost ruleset)
     * @param domains UUIDs of domains to re-read and apply (after the whole host, when both)
     */
    void run(boolean all, boolean reread, Set<String> domains) throws Exception;
  }

  private final Sync sync;
  private final long minIntervalMs;
  private final long settleMs;
  private final long resyncMs;
  private final long retryMinMs;
  private final long retryMaxMs;
  private final LongSupplier clock;

  private final Set<String> dirty = new LinkedHashSet<>();
  private boolean all;
  private boolean reread;
  private long lastRunMs = Long.MIN_VALUE / 2;
  private long lastFullMs;
  private long notBeforeMs;
  private long retryMs;
  private boolean stopped;
  private Thread thread;

  public Runner(Sync sync, long minIntervalMs, long settleMs, long resyncMs, long retryMinMs, long retryMaxMs) {
    this(sync, minIntervalMs, settleMs, resyncMs, retryMinMs, retryMaxMs, System::currentTimeMillis);
  }

  Runner(Sync sync, long minIntervalMs, long settleMs, long resyncMs, long retryMinMs, long retryMaxMs, LongSupplier clock) {
    this.sync = sync;
    this.minIntervalMs = minIntervalMs;
    this.settleMs = settleMs;
    this.resyncMs = resyncMs;
    this.retryMinMs = retryMinMs;
    this.retryMaxMs = retryMaxMs;
    this.clock = clock;
    this.lastFullMs = clock.getAsLong();
  }

  public synchronized void markDomain(String uuid) {
    dirty.add(uuid);
    notifyAll();
  }

  /**
   * The whole host; {@code reread}: from libvirt (see {@link Sync#run}). Marked domains stay marked
   * unless the pass re-reads everything (a restore from what is known does not see their change).
   */
  public synchronized void markAll(boolean reread) {
    all = true;
    this.reread |= reread;
    notifyAll();
  }

  /** No pass before {@code epochMs} (the agent backs off a tool that keeps deleting our table). */
  public synchronized void holdUntil(long epochMs) {
    notBeforeMs = Math.max(notBeforeMs, epochMs);
    notifyAll();
  }

  /** Forgets the retry backoff (the connection is back: try at once). */
  public synchronized void retryNow() {
    retryMs = 0;
    notBeforeMs = 0;
    notifyAll();
  }

  public synchronized void start() {
    thread = new Thread(this::loop, "agent-runner");
    thread.setDaemon(true);
    thread.start();
  }

  public void stop() {
    Thread t;
    synchronized (this) {
      stopped = true;
      notifyAll();
      t = thread;
    }
    if (t != null) {
      t.interrupt();
      try {
        t.join(5000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void loop() {
    while (true) {
      boolean runAll;
      boolean runReread;
      Set<String> domains;
      try {
        synchronized (this) {
          while (!stopped && !due()) {
            long wait = waitMs();
            wait(Math.max(1, wait));
          }
          if (stopped) {
            return;
          }
          if (!all && dirty.isEmpty()) {
            all = true;
            reread = true;
          }
        }
        // let the rest of a burst arrive, then take everything marked so far
        Thread.sleep(settleMs);
        synchronized (this) {
          if (clock.getAsLong() < notBeforeMs) {
            continue; // the burst asked to hold off (its last line: our table deleted once too often)
          }
          runAll = all;
          runReread = reread;
          domains = runAll && runReread ? Set.of() : Set.copyOf(dirty);
          all = false;
          reread = false;
          dirty.clear();
          lastRunMs = clock.getAsLong();
        }
      } catch (InterruptedException e) {
        return;
      }
      try {
        sync.run(runAll, runReread, domains);
        synchronized (this) {
          retryMs = 0;
          if (runAll && runReread) {
            lastFullMs = clock.getAsLong();
          }
        }
      } catch (Exception e) {
        synchronized (this) {
          retryMs = retryMs == 0 ? retryMinMs : Math.min(retryMaxMs, retryMs * 2);
          notBeforeMs = Math.max(notBeforeMs, clock.getAsLong() + retryMs);
          if (runAll) {
            all = true;
            reread |= runReread;
          }
          dirty.addAll(domains);
        }
      }
    }
  }

  /** Whether a pass should start now (caller holds the monitor). */
  private boolean due() {
    long now = clock.getAsLong();
    if (now < notBeforeMs || now < lastRunMs + minIntervalMs) {
      return false;
    }
    return all || !dirty.isEmpty() || now >= lastFullMs + resyncMs;
  }

  /** How long to wait for the next possible pass (caller holds the monitor). */
  private long waitMs() {
    long now = clock.getAsLong();
    long earliest = Math.max(notBeforeMs, lastRunMs + minIntervalMs);
    if (all || !dirty.isEmpty()) {
      return earliest - now;
    }
    return Math.max(earliest, lastFullMs + resyncMs) - now;
  }

  /** The current retry delay (0 after a success). */
  synchronized long retryMs() {
    return retryMs;
  }
}
