/*
** One phaeton charger on the GX screen: Device list > the charger > phaeton. Why the current
** is what it is, and the energy plan at a glance (read-only paths of phaeton's own evcharger
** service, docs/control.md); the planner's knobs one tap away.
*/
import QtQuick
import Victron.VenusOS

DeviceListPluginPage {
	id: root

	readonly property string charger: root.device.serviceUid

	title: "phaeton"

	GradientListView {
		model: VisibleItemModel {
			ListText {
				text: "Why this current"
				dataItem.uid: root.charger + "/Reason"
			}

			ListText {
				text: "Limited by"
				dataItem.uid: root.charger + "/LimitedBy"
			}

			ListText {
				text: "Car"
				dataItem.uid: root.charger + "/Vehicle/Name"
				preferredVisible: dataItem.valid
			}

			ListQuantity {
				text: "Car's own SoC"
				dataItem.uid: root.charger + "/Vehicle/Soc"
				unit: VenusOS.Units_Percentage
				preferredVisible: dataItem.valid
			}

			ListQuantity {
				text: "Car SoC read"
				dataItem.uid: root.charger + "/Vehicle/SocAge"
				unit: VenusOS.Units_Time_Second
				preferredVisible: dataItem.valid
			}

			ListText {
				text: "Energy plan"
				dataItem.uid: root.charger + "/Planner/Reason"
			}

			ListText {
				text: "Battery follows"
				dataItem.uid: root.charger + "/Planner/BatterySource"
			}

			ListQuantity {
				text: "Battery target now"
				dataItem.uid: root.charger + "/Planner/TargetSoc"
				unit: VenusOS.Units_Percentage
			}

			ListQuantity {
				text: "Planned cost"
				dataItem.uid: root.charger + "/Planner/PlannedCost"
				decimals: 2
			}

			ListQuantity {
				text: "Planned savings"
				dataItem.uid: root.charger + "/Planner/PlannedSavings"
				decimals: 2
			}

			ListText {
				text: "Next plan step"
				dataItem.uid: root.charger + "/Planner/NextSlot"
				secondaryText: dataItem.valid
					? Qt.formatTime(new Date(dataItem.value * 1000), "hh:mm") : "--"
			}

			ListText {
				text: "Grid CO2 now"
				dataItem.uid: root.charger + "/Carbon/Intensity"
				preferredVisible: dataItem.valid
				secondaryText: dataItem.valid ? Math.round(dataItem.value) + " g/kWh" : ""
			}

			ListNavigation {
				text: "Planner settings"
				onClicked: Global.pageManager.pushPage("qrc:/phaeton/phaeton_PlannerSettings.qml")
			}
		}
	}
}
