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
 */
public record Plan(String script, Map<String, Owner> claim, List<String> release, List<String> domainTaps) {}
