package ch.ungleich.uncloud.hook.model;

import java.util.List;

/**
 * The desired filtering for one domain, derived purely from its XML and the host configuration.
 *
 * @param warnings things an operator should know that do not stop the domain (a macvtap NIC cannot be
 *     filtered at the bridge, for example); the hook logs them
 */
public record DomainPolicy(String name, String uuid, List<NicPolicy> nics, List<String> warnings) {}
