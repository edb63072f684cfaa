package ch.ungleich.uncloud.hook.agent;

import ch.ungleich.uncloud.hook.nft.NftRunner;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The agent's {@link NftRunner}: knows which nf_tables generations its own transactions produced, so
 * that their notifications are skipped unread ({@link #ours}). Before each {@code nft -f} it reads the
 * generation id G (one netlink request) and expects G+1; a committed transaction raises the id by
 * exactly one. If the id afterwards is not G+1, another transaction (a hook call, another tool)
 * committed in between and G+1 may have been that one's: {@code uncertain} runs, and the agent checks
 * the kernel as it would after a foreign change.
 */
final class OwnTransactions implements NftRunner {
  private final NftRunner nft;
  private final Runnable uncertain;
  private final Set<Long> expected = ConcurrentHashMap.newKeySet();

  OwnTransactions(NftRunner nft, Runnable uncertain) {
    this.nft = nft;
    this.uncertain = uncertain;
  }

  /**
   * Whether generation {@code id}, whose NEWGEN notification just arrived, is one of the agent's own
   * transactions; it is forgotten then (each generation ends once), so only transactions in flight are
   * expected and {@link #oursLow} cannot confuse an old id with a new one 65 536 generations on.
   */
  boolean ours(long id) {
    return expected.remove(id);
  }

  /** Whether a notification carrying these low 16 bits of its generation id belongs to a transaction of ours in flight. */
  boolean oursLow(int low16) {
    for (long id : expected) {
      if ((id & 0xffff) == low16) {
        return true;
      }
    }
    return false;
  }

  @Override
  public void apply(String script) {
    Long before = id(nft.generation());
    Long next = before == null ? null : (before + 1) & 0xffffffffL;
    if (next != null) {
      // one whose end was never seen (notifications were down) is forgotten after a while
      expected.removeIf(id -> ((before - id) & 0xffffffffL) < 0x80000000L && before - id > 1000);
      expected.add(next);
    }
    boolean ok = false;
    try {
      nft.apply(script);
      ok = true;
    } finally {
      Long after = id(nft.generation());
      if (!ok && next != null) {
        expected.remove(next); // refused: nothing of ours committed; a later foreign G+1 is not ours
      }
      if (next != null && !(ok ? next.equals(after) : before.equals(after))) {
        uncertain.run();
      }
      if (next == null && ok) {
        uncertain.run();
      }
    }
  }

  /** The generation counter in {@link NftRunner#generation()}'s text ({@code boot:netns:id}), or null. */
  static Long id(Optional<String> generation) {
    if (generation.isEmpty()) {
      return null;
    }
    String g = generation.get();
    try {
      return Long.parseLong(g.substring(g.lastIndexOf(':') + 1));
    } catch (NumberFormatException e) {
      return null;
    }
  }

  @Override
  public String run(String... args) {
    return nft.run(args);
  }

  @Override
  public Optional<String> generation() {
    return nft.generation();
  }

  @Override
  public String identity() {
    return nft.identity();
  }

  @Override
  public String canonical(String script) {
    return nft.canonical(script);
  }

  @Override
  public String canonicalInbound(String script) {
    return nft.canonicalInbound(script);
  }
}
