/**
 * The one core that changes a host's rules: every entry point (the hook call, {@code hook-batch},
 * {@code reconcile}, doctor's drift check and the agent) hands it domain policies and lets it plan
 * with the backend, apply one nft transaction and commit the ownership records, all under the host
 * lock. It reads no libvirt and parses no XML: callers bring {@code DomainPolicy} records (and, where
 * the live host matters, a function that tells a tap's MAC), so the hook's hot path stays free of
 * libvirt-java, picocli and JAXB.
 */
package ch.ungleich.uncloud.hook.engine;
