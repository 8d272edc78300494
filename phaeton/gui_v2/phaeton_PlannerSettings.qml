/*
** phaeton's energy planner on the GX screen: Settings > Integrations > UI Plugins > phaeton.
** The planner's knobs are GX settings (com.victronenergy.settings /Settings/Phaeton/Planner/*,
** see docs/planner.md); a change here re-plans within seconds, as from the web UI or VRM.
*/
import QtQuick
import Victron.VenusOS

Page {
	id: root

	readonly property string knobs: BackendConnection.serviceUidForType("settings") + "/Settings/Phaeton/Planner"

	title: "phaeton energy planner"

	VeQuickItem {
		id: departure
		uid: root.knobs + "/EvDepartureTime"     // minutes after local midnight
	}

	Component {
		id: departureDialog

		TimeSelectorDialog {
			onAccepted: departure.setValue(hour * 60 + minute)
		}
	}

	GradientListView {
		model: VisibleItemModel {
			ListRadioButtonGroup {
				text: "Battery strategy"
				dataItem.uid: root.knobs + "/Strategy"
				writeAccessLevel: VenusOS.User_AccessType_User
				optionModel: [
					{ display: "Off: phaeton leaves the battery alone", value: 0 },
					{ display: "Self-consumption", value: 1 },
					{ display: "Optimise against prices", value: 2 }
				]
			}

			ListRadioButtonGroup {
				text: "The plan minimises"
				dataItem.uid: root.knobs + "/Objective"
				writeAccessLevel: VenusOS.User_AccessType_User
				optionModel: [
					{ display: "Cost", value: 0 },
					{ display: "CO2", value: 1 },
					{ display: "Cost plus a carbon price", value: 2 }
				]
			}

			ListSpinBox {
				text: "Carbon price (per tonne)"
				dataItem.uid: root.knobs + "/CarbonPrice"
				writeAccessLevel: VenusOS.User_AccessType_User
				stepSize: 10
			}

			ListSpinBox {
				text: "Car: charge to"
				dataItem.uid: root.knobs + "/EvTargetSoc"
				writeAccessLevel: VenusOS.User_AccessType_User
				suffix: "%"
				stepSize: 5
			}

			ListButton {
				text: "Car: departure"
				secondaryText: departure.valid
					? ClockTime.formatTime(Math.floor(departure.value / 60), departure.value % 60)
					: "--"
				writeAccessLevel: VenusOS.User_AccessType_User
				onClicked: Global.dialogLayer.open(departureDialog, {
					hour: Math.floor(departure.value / 60), minute: departure.value % 60 })
			}

			ListSpinBox {
				text: "Car: energy instead (0 = charge to the SoC)"
				dataItem.uid: root.knobs + "/EvTargetKwh"
				writeAccessLevel: VenusOS.User_AccessType_User
				suffix: "kWh"
			}

			ListSwitch {
				text: "Battery may charge from the grid"
				dataItem.uid: root.knobs + "/AllowGridCharging"
				writeAccessLevel: VenusOS.User_AccessType_User
			}

			ListSwitch {
				text: "Battery may sell to the grid"
				dataItem.uid: root.knobs + "/AllowExport"
				writeAccessLevel: VenusOS.User_AccessType_User
			}

			ListSpinBox {
				text: "Battery minimum SoC"
				dataItem.uid: root.knobs + "/MinimumSoc"
				writeAccessLevel: VenusOS.User_AccessType_User
				suffix: "%"
			}

			ListSpinBox {
				text: "Battery reserve on top"
				dataItem.uid: root.knobs + "/ReserveSoc"
				writeAccessLevel: VenusOS.User_AccessType_User
				suffix: "%"
			}
		}
	}
}
