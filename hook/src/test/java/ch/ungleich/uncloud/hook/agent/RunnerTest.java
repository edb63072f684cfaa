package ch.ungleich.uncloud.hook.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class RunnerTest {
  record Pass(boolean all, boolean reread, Set<String> domains) {}

  static void await(java.util.function.BooleanSupplier c) throws InterruptedException {
    long deadline = System.currentTimeMillis() + 5000;
    while (!c.getAsBoolean()) {
      assertTrue(System.currentTimeMillis() < deadline, "timed out");
      Thread.sleep(5);
    }
  }

  @Test
  void aBurstOfMarksBecomesFewPassesWithEveryDomain() throws Exception {
    List<Pass> passes = Collections.synchronizedList(new ArrayList<>());
    Runner r = new Runner((all, reread, d) -> passes.add(new Pass(all, reread, d)), 50, 10, 60_000, 10, 100);
    r.start();
    for (int i = 0; i < 200; i++) {
      r.markDomain("d" + i);
    }
    await(() -> passes.stream().mapToInt(p -> p.domains().size()).sum() == 200);
    Thread.sleep(100);
    assertTrue(passes.size() <= 2, "coalesced: " + passes.size());
    r.stop();
  }

  @Test
  void markAllSupersedesDomainsAndRereadIsKept() throws Exception {
    List<Pass> passes = Collections.synchronizedList(new ArrayList<>());
    Runner r = new Runner((all, reread, d) -> passes.add(new Pass(all, reread, d)), 50, 20, 60_000, 10, 100);
    r.markDomain("x");
    r.markAll(true);
    r.markAll(false);
    r.start();
    await(() -> !passes.isEmpty());
    Thread.sleep(100);
    assertEquals(List.of(new Pass(true, true, Set.of())), passes);
    r.stop();
  }

  @Test
  void aDomainMarkedWithARestoreFromWhatIsKnownIsStillReRead() throws Exception {
    List<Pass> passes = Collections.synchronizedList(new ArrayList<>());
    Runner r = new Runner((all, reread, d) -> passes.add(new Pass(all, reread, d)), 50, 20, 60_000, 10, 100);
    r.markAll(false);
    r.markDomain("y");
    r.start();
    await(() -> !passes.isEmpty());
    Thread.sleep(100);
    assertEquals(List.of(new Pass(true, false, Set.of("y"))), passes);
    r.stop();
  }

  @Test
  void aFailedPassIsRetriedWithBackoffThenSucceeds() throws Exception {
    AtomicInteger calls = new AtomicInteger();
    List<Set<String>> ok = Collections.synchronizedList(new ArrayList<>());
    Runner r = new Runner((all, reread, d) -> {
      if (calls.incrementAndGet() <= 3) {
        throw new IllegalStateException("nft refused");
      }
      ok.add(d);
    }, 1, 1, 60_000, 20, 1000);
    r.start();
    long t0 = System.currentTimeMillis();
    r.markDomain("a");
    await(() -> !ok.isEmpty());
    long took = System.currentTimeMillis() - t0;
    assertEquals(List.of(Set.of("a")), ok);
    assertTrue(took >= 20 + 40 + 80, "backoff 20, 40, 80 ms: took " + took);
    assertEquals(0, r.retryMs());
    r.stop();
  }

  @Test
  void idleItResyncsPeriodically() throws Exception {
    List<Pass> passes = Collections.synchronizedList(new ArrayList<>());
    Runner r = new Runner((all, reread, d) -> passes.add(new Pass(all, reread, d)), 1, 1, 100, 10, 100);
    r.start();
    await(() -> passes.size() >= 3);
    r.stop();
    assertTrue(passes.stream().allMatch(p -> p.all() && p.reread()), passes.toString());
  }

  @Test
  void aHoldArrivingDuringTheSettleStillHolds() throws Exception {
    List<Long> at = Collections.synchronizedList(new ArrayList<>());
    Runner r = new Runner((all, reread, d) -> at.add(System.currentTimeMillis()), 1, 100, 60_000, 10, 100);
    r.start();
    long t0 = System.currentTimeMillis();
    r.markAll(false);
    Thread.sleep(30);
    r.holdUntil(System.currentTimeMillis() + 400);
    await(() -> !at.isEmpty());
    assertTrue(at.get(0) - t0 >= 420, "held although the pass had begun to settle: " + (at.get(0) - t0));
    r.stop();
  }

  @Test
  void holdUntilDelaysThePass() throws Exception {
    List<Long> at = Collections.synchronizedList(new ArrayList<>());
    Runner r = new Runner((all, reread, d) -> at.add(System.currentTimeMillis()), 1, 1, 60_000, 10, 100);
    r.start();
    long t0 = System.currentTimeMillis();
    r.holdUntil(t0 + 300);
    r.markAll(false);
    await(() -> !at.isEmpty());
    assertTrue(at.get(0) - t0 >= 290, "held: " + (at.get(0) - t0));
    r.stop();
  }
}
