package ch.ungleich.uncloud.hook.state;

import java.util.List;
import java.util.Map;

/**
 * What one hook call changes: one nft script, and the ownership records that become true once the
 * script has been applied.
 *
 * @param script the nft transaction; empty when there is nothing to do
 * @param claim taps whose rules now belong to the given owner
 * @param release taps whose ownership record is removed
 * @param domainTaps the domain's taps from now on; null to forget the domain
 * @param note what the caller should log besides (a vm_taps guard pattern withheld), else null
 */
public record Plan(String script, Map<String, Owner> claim, List<String> release, List<String> domainTaps, String note) {
  public Plan(String script, Map<String, Owner> claim, List<String> release, List<String> domainTaps) {
    this(script, claim, release, domainTaps, null);
  }

  public Plan withNote(String n) {
    return new Plan(script, claim, release, domainTaps, n);
  }
}
