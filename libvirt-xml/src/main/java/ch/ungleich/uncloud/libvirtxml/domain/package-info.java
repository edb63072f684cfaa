/**
 * The parts of libvirt's domain XML that uncloud-hook reads: name, UUID, metadata and the NICs.
 * Everything else in a domain document is ignored on read; this model is never used to write a domain
 * back (libvirt must get its own XML unchanged, see the hook's rewriting code for that).
 */
@XmlAccessorType(XmlAccessType.FIELD)
package ch.ungleich.uncloud.libvirtxml.domain;

import jakarta.xml.bind.annotation.XmlAccessType;
import jakarta.xml.bind.annotation.XmlAccessorType;
