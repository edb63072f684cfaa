package ch.ungleich.uncloud.hook.agent;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * Keeps the agent from fighting another tool forever: counts deletions of our whole table in a
 * sliding window; beyond {@code limit} of them the restore waits, 1 s, then 2, 4, ... up to {@code
 * maxDelayMs}, for each further deletion. A window without deletions ends the fight. Pure (times are
 * passed in).
 */
final class FightGuard {
  private final int limit;
  private final long windowMs;
  private final long maxDelayMs;
  private final Deque<Long> deletions = new ArrayDeque<>();
  private long delayMs;

  FightGuard(int limit, long windowMs, long maxDelayMs) {
    this.limit = limit;
    this.windowMs = windowMs;
    this.maxDelayMs = maxDelayMs;
  }

  /** Our table was deleted at {@code nowMs}: how long the restore must wait (0: at once). */
  synchronized long deleted(long nowMs) {
    while (!deletions.isEmpty() && deletions.peekFirst() <= nowMs - windowMs) {
      deletions.removeFirst();
    }
    if (deletions.isEmpty()) {
      delayMs = 0;
    }
    deletions.addLast(nowMs);
    if (deletions.size() <= limit) {
      return 0;
    }
    delayMs = delayMs == 0 ? 1000 : Math.min(maxDelayMs, delayMs * 2);
    return delayMs;
  }

  /** Whether more than {@code limit} deletions fall in the window ending at {@code nowMs}. */
  synchronized boolean fighting(long nowMs) {
    return recent(nowMs) > limit;
  }

  /** Deletions within the window ending at {@code nowMs}. */
  synchronized int recent(long nowMs) {
    return (int) deletions.stream().filter(t -> t > nowMs - windowMs).count();
  }
}
