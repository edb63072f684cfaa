package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Keeps the scripts it was given (knftables' fake: LastTransaction); can be told to fail. */
public final class FakeNftRunner implements NftRunner {
  public final List<String> scripts = Collections.synchronizedList(new ArrayList<>());
  public String failWith;
  /** What {@link #run} prints, by its arguments joined with spaces; "" for any other. */
  public final java.util.Map<String, String> listings = new java.util.HashMap<>();

  @Override
  public void apply(String script) {
    if (failWith != null) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "nft failed: " + failWith);
    }
    scripts.add(script);
  }

  @Override
  public String run(String... args) {
    String out = listings.get(String.join(" ", args));
    if (out != null && out.startsWith("Error: ")) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "nft failed: " + out);
    }
    return out == null ? "" : out;
  }

  public String last() {
    return scripts.isEmpty() ? null : scripts.get(scripts.size() - 1);
  }
}
