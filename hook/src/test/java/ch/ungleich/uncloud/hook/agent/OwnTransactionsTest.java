package ch.ungleich.uncloud.hook.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class OwnTransactionsTest {
  /** A kernel whose generation rises by {@code step} per apply (2: another transaction slipped in). */
  static NftRunner kernel(AtomicLong gen, int step, boolean refuse) {
    return new NftRunner() {
      @Override
      public void apply(String script) {
        if (refuse) {
          throw new UncloudException(ExitCodes.APPLY_FAILED, "nft: refused");
        }
        gen.addAndGet(step);
      }

      @Override
      public String run(String... args) {
        return "";
      }

      @Override
      public Optional<String> generation() {
        return Optional.of("boot:4026531840:" + gen.get());
      }
    };
  }

  @Test
  void itsOwnGenerationIsKnownAndNothingIsUncertain() {
    AtomicLong gen = new AtomicLong(41);
    AtomicInteger uncertain = new AtomicInteger();
    OwnTransactions o = new OwnTransactions(kernel(gen, 1, false), uncertain::incrementAndGet);
    o.apply("x");
    assertTrue(o.oursLow(42));
    assertFalse(o.oursLow(43));
    assertTrue(o.ours(42));
    assertFalse(o.ours(42), "each generation ends once: forgotten after its NEWGEN");
    assertFalse(o.oursLow(42));
    assertEquals(0, uncertain.get());
  }

  @Test
  void anotherTransactionInBetweenIsUncertain() {
    AtomicLong gen = new AtomicLong(41);
    AtomicInteger uncertain = new AtomicInteger();
    new OwnTransactions(kernel(gen, 2, false), uncertain::incrementAndGet).apply("x");
    assertEquals(1, uncertain.get());
  }

  @Test
  void aRefusedScriptClaimsNoGeneration() {
    AtomicLong gen = new AtomicLong(41);
    AtomicInteger uncertain = new AtomicInteger();
    OwnTransactions o = new OwnTransactions(kernel(gen, 1, true), uncertain::incrementAndGet);
    assertThrows(UncloudException.class, () -> o.apply("x"));
    assertFalse(o.ours(42), "a foreign transaction that gets 42 later is not ours");
    assertEquals(0, uncertain.get());
  }

  @Test
  void theIdIsTheLastPart() {
    assertEquals(17L, OwnTransactions.id(Optional.of("5f0c:4026531840:17")));
    assertEquals(null, OwnTransactions.id(Optional.empty()));
  }
}
