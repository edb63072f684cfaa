/** Our metadata element, {@code <uc:firewall xmlns:uc="https://ungleich.ch/uncloud/hook/1">}. */
@XmlSchema(
    namespace = Firewall.NAMESPACE,
    elementFormDefault = XmlNsForm.QUALIFIED,
    xmlns = @XmlNs(prefix = "uc", namespaceURI = Firewall.NAMESPACE))
@XmlAccessorType(XmlAccessType.FIELD)
package ch.ungleich.uncloud.libvirtxml.firewall;

import jakarta.xml.bind.annotation.XmlAccessType;
import jakarta.xml.bind.annotation.XmlAccessorType;
import jakarta.xml.bind.annotation.XmlNs;
import jakarta.xml.bind.annotation.XmlNsForm;
import jakarta.xml.bind.annotation.XmlSchema;
