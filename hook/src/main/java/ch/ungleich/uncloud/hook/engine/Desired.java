package ch.ungleich.uncloud.hook.engine;

import ch.ungleich.uncloud.hook.model.DomainPolicy;
import java.util.List;
import java.util.Set;

/**
 * What a host's running domains demand, as read from libvirt (never under the host lock: a hook call
 * holds libvirt's domain lock while it waits for ours).
 *
 * @param policies the running domains whose metadata is valid
 * @param running UUIDs of every running domain libvirt listed, valid or not
 * @param untouchable taps of running domains whose metadata is invalid: their rules stay as they are
 */
public record Desired(List<DomainPolicy> policies, Set<String> running, Set<String> untouchable) {}
