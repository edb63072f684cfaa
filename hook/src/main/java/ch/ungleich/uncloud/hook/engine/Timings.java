package ch.ungleich.uncloud.hook.engine;

import java.util.ArrayList;
import java.util.List;

/**
 * Where a reconcile's time goes ({@code reconcile --timings}): named phases in the order they
 * ended, each with its wall time. Phases run on other threads (the scratch load runs while nft lists
 * our table) are added with {@link #add}. {@link #OFF} records nothing.
 */
public class Timings {
  /** Records nothing. */
  public static final Timings OFF =
      new Timings() {
        @Override
        public synchronized void add(String phase, long nanos) {}
      };

  private final List<String> phases = new ArrayList<>();
  private final List<Long> nanos = new ArrayList<>();
  private long last = System.nanoTime();

  /** Ends the phase that began at the previous mark (or at construction). */
  public synchronized void mark(String phase) {
    long now = System.nanoTime();
    add(phase, now - last);
    last = now;
  }

  /** A phase timed elsewhere; does not move the mark. */
  public synchronized void add(String phase, long nanos) {
    phases.add(phase);
    this.nanos.add(nanos);
  }

  /** Restarts the current phase (time since the last mark is not counted). */
  public synchronized void restart() {
    last = System.nanoTime();
  }

  /** {@code libvirt 210 ms, policies 95 ms, ...}; empty when nothing was recorded. */
  @Override
  public synchronized String toString() {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < phases.size(); i++) {
      b.append(i == 0 ? "" : ", ").append(phases.get(i)).append(' ').append(nanos.get(i) / 1_000_000).append(" ms");
    }
    return b.toString();
  }
}
